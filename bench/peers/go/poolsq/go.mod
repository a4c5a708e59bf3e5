module belt/bench/peers/go/poolsq

go 1.19
