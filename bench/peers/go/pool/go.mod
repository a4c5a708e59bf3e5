module belt/bench/peers/go/pool

go 1.19
