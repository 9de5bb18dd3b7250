package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/stageproxy/stageproxy/mitm"
)

// caInitOptions are ca init's dependencies and validated input.
type caInitOptions struct {
	stderr io.Writer
	out    string           // --out: the directory for ca.crt and ca.key
	now    func() time.Time // time.Now; tests replace it
}

func newCAInitCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "init --out DIR",
		Short: "make a new interception CA in a directory",
		Long: `Init makes a new certificate authority for serve --mitm-ca: DIR/ca.crt, the
certificate that clients trust (mode 0644), and DIR/ca.key, its private key
(mode 0600). DIR is created, mode 0700, when missing. The key is ECDSA
P-256; the certificate is valid for 10 years.

Init never overwrites: when DIR already holds ca.crt or ca.key it fails
and leaves them as they are, since clients may trust that CA already.`,
		Example: `  stageproxy ca init --out /etc/stageproxy/ca
  export PIP_CERT=/etc/stageproxy/ca/ca.crt NODE_EXTRA_CA_CERTS=/etc/stageproxy/ca/ca.crt`,
		Args: cobra.NoArgs,
		RunE: g.runE(func(cmd *cobra.Command, args []string) error {
			opts, err := newCAInitOptions(out, g.stderr)
			if err != nil {
				return &usageError{err}
			}
			return caInitRun(cmd.Context(), opts)
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write ca.crt and ca.key to (required; created when missing)")
	return cmd
}

// newCAInitOptions validates init's flags. It does no I/O.
func newCAInitOptions(out string, stderr io.Writer) (*caInitOptions, error) {
	if out == "" {
		return nil, errors.New("missing --out DIR (want the directory for ca.crt and ca.key, e.g. --out /etc/stageproxy/ca)")
	}
	return &caInitOptions{stderr: stderr, out: out, now: time.Now}, nil
}

// caInitRun makes the CA and tells the user on stderr what to do with it;
// stdout stays empty.
func caInitRun(ctx context.Context, opts *caInitOptions) error {
	certPath, keyPath, err := mitm.Init(opts.out, opts.now())
	if errors.Is(err, mitm.ErrExists) {
		return fmt.Errorf("%v; not overwritten (remove it, or choose another --out)", err)
	}
	if err != nil {
		return fmt.Errorf("%v (choose a --out directory you can write to)", err)
	}
	fmt.Fprintf(opts.stderr, `stageproxy: wrote the CA certificate %s and its key %s (mode 0600; keep it on this host)
next: stageproxy serve --mitm-ca %s --mitm-hosts pypi.org,files.pythonhosted.org,registry.npmjs.org
then make the clients trust %s: PIP_CERT=%s, NODE_EXTRA_CA_CERTS=%s,
or system-wide: cp %s /usr/local/share/ca-certificates/stageproxy.crt && update-ca-certificates
`, certPath, keyPath, opts.out, certPath, certPath, certPath, certPath)
	return nil
}
