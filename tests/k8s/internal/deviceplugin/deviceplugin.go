// Package deviceplugin is a minimal kubelet device plugin for the cluster's own tests: it
// advertises COUNT devices of one extended resource and answers every allocation with a CDI
// device name. A pod that requests the resource then gets that CDI device from containerd, which
// checks the runtime's CDI support independently of nvdra.
package deviceplugin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	count     int
	cdiDevice string
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	resp := &pluginapi.ListAndWatchResponse{}
	for i := 0; i < p.count; i++ {
		resp.Devices = append(resp.Devices, &pluginapi.Device{ID: fmt.Sprintf("dev-%d", i), Health: pluginapi.Healthy})
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for range req.ContainerRequests {
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			CdiDevices: []*pluginapi.CDIDevice{{Name: p.cdiDevice}},
		})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// Main is `nvdra-k8s device-plugin`: it serves until SIGINT/SIGTERM, registering again whenever
// kubelet restarts (kubelet removes the plugin sockets when it starts).
func Main(args []string) error {
	fs := flag.NewFlagSet("device-plugin", flag.ExitOnError)
	dir := fs.String("socket-dir", "", "kubelet's device-plugins folder (as this process sees it)")
	resource := fs.String("resource", "", "extended resource name, e.g. test.nvdra.dev/cdi")
	cdiDevice := fs.String("cdi-device", "", "fully qualified CDI device name, e.g. test.nvdra.dev/dev=one")
	count := fs.Int("count", 1, "devices to advertise")
	fs.Parse(args)
	if *dir == "" || *resource == "" || *cdiDevice == "" {
		return errors.New("usage: nvdra-k8s device-plugin --socket-dir DIR --resource NAME --cdi-device NAME [--count N]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	endpoint := "nvdra-k8s-test.sock"
	socket := filepath.Join(*dir, endpoint)
	for ctx.Err() == nil {
		if err := serveOnce(ctx, *dir, socket, endpoint, *resource, &plugin{count: *count, cdiDevice: *cdiDevice}); err != nil {
			fmt.Fprintln(os.Stderr, "device-plugin:", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	_ = os.Remove(socket)
	return nil
}

// serveOnce serves the plugin socket, registers with kubelet and returns when the socket is gone
// (kubelet restarted) or ctx ends.
func serveOnce(ctx context.Context, dir, socket, endpoint, resource string, p *plugin) error {
	_ = os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, p)
	go server.Serve(listener)
	defer server.Stop()

	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	regCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(regCtx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: resource})
	if err != nil {
		return fmt.Errorf("register with kubelet: %w", err)
	}
	fmt.Fprintf(os.Stderr, "device-plugin: registered %s (%d devices) -> %s\n", resource, p.count, p.cdiDevice)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if _, err := os.Stat(socket); err != nil {
			return errors.New("socket removed (kubelet restarted); registering again")
		}
	}
}
