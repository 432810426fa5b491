// Command etcd is etcd's own server entry point, built from the Go module proxy
// so that hack/testenv can run a real etcd without downloading a release binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
