// Package image turns a root filesystem folder into an image archive that containerd imports
// (`ctr images import`), under as many names as the tests need: nothing can be pulled on this
// machine, so every image a manifest names is built here and tagged with that name.
package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec describes the images of one archive: one root filesystem (a single layer), and per image
// its names and run settings (images differ only in those, as the sample images NVIDIA's manifests
// name differ in their default commands).
type Spec struct {
	Rootfs string  `json:"rootfs"`
	Out    string  `json:"out"`
	Images []Entry `json:"images"`
}

// Entry is one image of a Spec.
type Entry struct {
	Tags       []string `json:"tags"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Main is `nvdra-k8s image --spec FILE`.
func Main(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	specFile := fs.String("spec", "", "JSON file: {rootfs, out, images: [{tags, entrypoint, cmd, env, workingDir, user}]}")
	fs.Parse(args)
	if *specFile == "" || fs.NArg() > 0 {
		return errors.New("usage: nvdra-k8s image --spec FILE")
	}
	data, err := os.ReadFile(*specFile)
	if err != nil {
		return err
	}
	var spec Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("%s: %w", *specFile, err)
	}
	if spec.Rootfs == "" || spec.Out == "" || len(spec.Images) == 0 {
		return fmt.Errorf("%s: rootfs, out and at least one image are required", *specFile)
	}
	return Build(spec)
}

// Build writes the archive of spec's images, all sharing the one layer made of spec.Rootfs.
func Build(spec Spec) error {
	if st, err := os.Stat(spec.Rootfs); err != nil || !st.IsDir() {
		return fmt.Errorf("root filesystem %s is not a folder", spec.Rootfs)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return tarFolder(spec.Rootfs) })
	if err != nil {
		return err
	}
	base, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, entry := range spec.Images {
		file, err := base.ConfigFile()
		if err != nil {
			return err
		}
		file = file.DeepCopy()
		file.OS, file.Architecture = "linux", "amd64"
		file.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
		file.Config = v1.Config{
			Entrypoint: entry.Entrypoint, Cmd: entry.Cmd, WorkingDir: entry.WorkingDir, User: entry.User,
			Env: append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, entry.Env...),
		}
		img, err := mutate.ConfigFile(base, file)
		if err != nil {
			return err
		}
		for _, tag := range entry.Tags {
			ref, err := name.NewTag(tag)
			if err != nil {
				return fmt.Errorf("image name %q: %w", tag, err)
			}
			refs[ref] = img
		}
	}
	tmp := spec.Out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		return err
	}
	return os.Rename(tmp, spec.Out)
}

// tarFolder streams dir as a tar, its entries in a fixed order.
func tarFolder(dir string) (io.ReadCloser, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	reader, writer := io.Pipe()
	go func() {
		writer.CloseWithError(writeTar(writer, dir, paths))
	}()
	return reader, nil
}

func writeTar(w io.Writer, dir string, paths []string) error {
	tw := tar.NewWriter(w)
	for _, p := range paths {
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		// Owners as in the folder (numeric: the image's users are its own /etc/passwd's).
		hdr.Uname, hdr.Gname = "", ""
		// The layer is read more than once (digest, size, then the archive): access and change
		// times would differ between reads, so only the modification time is kept.
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
