// Command imagebuild writes the serving image of medseq as an image tarball without a
// container daemon (`make image`): one layer holding a static medseq (CGO_ENABLED=0) at
// /usr/local/bin/medseq, the build machine's CA certificates and /etc/passwd and /etc/group
// with the non-root user 65532 that the image runs as; entrypoint `medseq serve`. Every
// timestamp is --created, so the same inputs give the same image digest. Built with
// github.com/google/go-containerregistry; kept out of the medseq binary.
//
//	go run ./internal/imagebuild --binary bin/medseq-static --out bin/medseq-serve-image.tar \
//	    --version v1.2.3 --revision $(git rev-parse HEAD) --created $(git log -1 --format=%cI)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "imagebuild:", err)
		}
		os.Exit(2)
	}
}

// run parses the flags, builds the image and writes it, printing its digest and size.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s Spec
	var out, created string
	fs.StringVar(&s.Binary, "binary", "bin/medseq-static", "the static medseq (CGO_ENABLED=0 go build ./cmd/medseq)")
	fs.StringVar(&s.CAFile, "ca", "/etc/ssl/certs/ca-certificates.crt", "CA certificates (PEM) copied into the image")
	fs.StringVar(&out, "out", "bin/medseq-serve-image.tar", "the image tarball written")
	fs.StringVar(&s.Version, "version", "devel", "image version: the tag and org.opencontainers.image.version")
	fs.StringVar(&s.Revision, "revision", "unknown", "the commit (org.opencontainers.image.revision)")
	fs.StringVar(&s.Source, "source", "https://github.com/medseq/medseq", "org.opencontainers.image.source")
	fs.StringVar(&s.Repo, "repo", "medseq-serve", "the repository of the tag in the tarball (REPO:VERSION)")
	fs.StringVar(&created, "created", os.Getenv("SOURCE_DATE_EPOCH"), "every timestamp in the image: RFC 3339 or Unix "+
		"seconds (default $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if s.Created, err = parseCreated(created); err != nil {
		return fmt.Errorf("flag --created: %w", err)
	}
	if _, err := s.Tag(); err != nil {
		return err
	}
	img, err := Build(s)
	if err != nil {
		return err
	}
	if err := Write(img, s, out); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s:%s %s, %d bytes\n", out, s.Repo, s.Version, d, st.Size())
	return nil
}

// parseCreated reads --created: RFC 3339, Unix seconds, or empty for the epoch.
func parseCreated(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(sec, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 or Unix seconds", v)
	}
	return t.UTC(), nil
}
