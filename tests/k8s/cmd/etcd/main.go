// Command etcd is the etcd server the test cluster's kube-apiserver stores its objects in, built
// from the etcd release pinned in go.mod (Debian's etcd is older than Kubernetes supports).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
