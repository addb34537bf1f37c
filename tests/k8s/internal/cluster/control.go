package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// The running orchestrator answers control requests on a Unix socket in the state folder, so that
// tests can stop, kill and restart a node's kubelet, containerd or kube-proxy, or import an image
// built after the start:
//
//	POST /nodes/<node>/<component>/<stop|kill|start|restart>  (stop: until start; kill: as a
//	                                                          crash, restarted like a systemd unit)
//	POST /images?archive=<path>

// ServeControl serves control requests until ctx ends.
func (c *Cluster) ServeControl(ctx context.Context) error {
	_ = os.Remove(c.L.ControlSocket())
	listener, err := net.Listen("unix", c.L.ControlSocket())
	if err != nil {
		return err
	}
	if err := os.Chmod(c.L.ControlSocket(), 0o600); err != nil {
		listener.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /nodes/{node}/{component}/{action}", c.handleNodeAction)
	mux.HandleFunc("POST /images", func(w http.ResponseWriter, r *http.Request) {
		if err := c.ImportImage(r.URL.Query().Get("archive")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "imported")
	})
	server := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); server.Close() }()
	err = server.Serve(listener)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (c *Cluster) handleNodeAction(w http.ResponseWriter, r *http.Request) {
	node, component, action := r.PathValue("node"), r.PathValue("component"), r.PathValue("action")
	c.mu.Lock()
	p := c.nodeProcs[node][component]
	c.mu.Unlock()
	if p == nil {
		http.Error(w, fmt.Sprintf("no %s on node %q", component, node), http.StatusNotFound)
		return
	}
	var err error
	switch action {
	case "stop":
		p.Stop(10 * time.Second)
	case "kill":
		p.Kill()
	case "start":
		err = p.Start()
	case "restart":
		p.Stop(10 * time.Second)
		err = p.Start()
	default:
		http.Error(w, fmt.Sprintf("unknown action %q (stop, kill, start, restart)", action), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	done := map[string]string{"stop": "stopped", "kill": "killed", "start": "started", "restart": "restarted"}
	fmt.Fprintf(w, "%s %s on %s\n", component, done[action], node)
}

// Control sends one control request to the orchestrator running in state.
func Control(state, path string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", Layout{State: state}.ControlSocket())
		}}}
	resp, err := client.Post("http://nvdra-k8s"+path, "text/plain", nil)
	if err != nil {
		return "", fmt.Errorf("no cluster answers in %s: %w", state, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
