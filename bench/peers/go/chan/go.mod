module belt/bench/peers/go/chan

go 1.19
