module parity-operator/testenv/pause

go 1.26.8
