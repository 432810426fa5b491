// pause: the sandbox image's only process. It holds the pod's namespaces open, sleeping
// until containerd stops the sandbox (SIGTERM or SIGINT), then exits 0. Built statically
// (CGO_ENABLED=0) by hack/testenv/images, so the image is this one file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// As PID 1 of the sandbox it also inherits orphans; Go's runtime does not reap them,
	// but nothing else runs in a sandbox container (pods do not share its PID namespace here).
	<-sig
}
