// CoreDNS for the real test node with only the plugins its Corefile uses: kubernetes (the
// cluster.local zone from Services and EndpointSlices), errors, health, ready and cache. No
// forward plugin: names outside the cluster are not resolved, so pods never query the outside.
// Upstream's main (github.com/coredns/coredns) imports core/plugin, which links every plugin.
// hack/testenv/build links it statically (CGO_ENABLED=0): the image has no libc.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
