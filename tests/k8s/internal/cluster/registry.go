package cluster

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The cluster's image registry: nothing can be pulled from the internet here, so every node's
// containerd uses this registry as the mirror of every registry (docker.io, nvcr.io, ghcr.io,
// registry.k8s.io, ...). Images the tests build are pushed into it under their full names, so a
// manifest that names `busybox` or `nvdra:latest` (which kubelet pulls even when the image is
// present) pulls as it would on a real cluster. The registry keeps its content in memory.

const registryPort = 5000

func registryHost(n Names) string { return net.JoinHostPort(n.HostIP(), strconv.Itoa(registryPort)) }

// startRegistry serves the registry on the cluster address until the orchestrator exits.
func (c *Cluster) startRegistry() error {
	listener, err := net.Listen("tcp", registryHost(c.L.N))
	if err != nil {
		return fmt.Errorf("image registry: %w", err)
	}
	quiet := log.New(io.Discard, "", 0)
	go http.Serve(listener, registry.New(registry.Logger(quiet)))
	return nil
}

// pushArchive pushes every image of an archive (as written by `nvdra-k8s image`) into the
// registry, each under the repository and tag it is named by.
func pushArchive(archive string, n Names) error {
	opener := func() (io.ReadCloser, error) { return os.Open(archive) }
	manifest, err := tarball.LoadManifest(opener)
	if err != nil {
		return fmt.Errorf("read image archive %s: %w", archive, err)
	}
	for _, desc := range manifest {
		for _, tagName := range desc.RepoTags {
			tag, err := name.NewTag(tagName)
			if err != nil {
				return err
			}
			img, err := tarball.Image(opener, &tag)
			if err != nil {
				return err
			}
			mirror, err := name.NewTag(fmt.Sprintf("%s/%s:%s", registryHost(n), tag.RepositoryStr(), tag.TagStr()),
				name.Insecure)
			if err != nil {
				return err
			}
			if err := remote.Write(mirror, img); err != nil {
				return fmt.Errorf("push %s: %w", tagName, err)
			}
		}
	}
	return nil
}

// writeRegistryHosts makes the registry every registry's mirror for a node's containerd.
func writeRegistryHosts(dir string, n Names) error {
	hosts := fmt.Sprintf("# Every registry is mirrored by the test cluster's own registry (nothing else is reachable).\n"+
		"[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+registryHost(n))
	if err := os.MkdirAll(filepath.Join(dir, "_default"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "_default", "hosts.toml"), []byte(hosts), 0o644)
}
