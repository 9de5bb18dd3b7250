package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stageproxy/stageproxy/config"
	"github.com/stageproxy/stageproxy/upstream"
)

// upstreamProxyDeleteOptions are delete's dependencies and validated input.
type upstreamProxyDeleteOptions struct {
	stderr     io.Writer
	configPath string
	// addr is the ADDR given, or nil to delete whatever parent is set.
	addr *upstream.Parent
	// anyKind is set when ADDR is a bare HOST:PORT, which names a parent
	// of any kind; with a scheme, only a parent of addr.Kind matches.
	anyKind bool
}

func newUpstreamProxyDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete [ADDR]",
		Short: "remove the parent proxy",
		Long: `Delete removes the parent proxy from the config file, with its credentials
and its no-proxy list, so that stageproxy connects directly. Every other line
and comment of the file is kept; the file is replaced atomically.

With ADDR (any form that set accepts), the parent is removed only if it is
that one: its HOST:PORT, and its kind when ADDR has a scheme, so that
socks5://HOST:PORT does not remove an HTTP parent at HOST:PORT (credentials
are not compared). When a different parent is set, delete fails with exit
status 1, names the parent in effect and writes nothing. Deleting when no parent is set succeeds, so that scripts can run it
on every node; a missing config file is not created.`,
		Example: `  stageproxy upstream_proxy delete
  stageproxy upstream_proxy delete 192.168.0.99:3128`,
		Args: cobra.MaximumNArgs(1),
		RunE: g.runE(func(cmd *cobra.Command, args []string) error {
			path, _ := g.configPath()
			opts, err := newUpstreamProxyDeleteOptions(args, path, g.stderr)
			if err != nil {
				return &usageError{err}
			}
			return upstreamProxyDeleteRun(cmd.Context(), opts)
		}),
	}
}

// newUpstreamProxyDeleteOptions validates delete's optional ADDR. It does
// no I/O.
func newUpstreamProxyDeleteOptions(args []string, configPath string, stderr io.Writer) (*upstreamProxyDeleteOptions, error) {
	opts := &upstreamProxyDeleteOptions{stderr: stderr, configPath: configPath}
	switch len(args) {
	case 0:
	case 1:
		p, err := upstream.ParseAddr(args[0])
		if err != nil {
			return nil, err
		}
		opts.addr = &p
		opts.anyKind = !strings.Contains(args[0], "://")
	default:
		return nil, fmt.Errorf("want at most one ADDR, got %d arguments", len(args))
	}
	return opts, nil
}

// upstreamProxyDeleteRun removes the parent keys from the config file.
func upstreamProxyDeleteRun(ctx context.Context, opts *upstreamProxyDeleteOptions) error {
	cf, err := readConfigFile(opts.configPath, nothingWritten)
	if err != nil {
		return err
	}
	if cf.cfg == nil {
		fmt.Fprintf(opts.stderr, "stageproxy: no upstream proxy was set (%s does not exist); nothing to delete\n", opts.configPath)
		return nil
	}
	current, err := upstream.FromKeys(cf.cfg)
	inEffect := describeParents(current)
	if opts.addr != nil {
		if err != nil {
			return fmt.Errorf("%s; cannot compare it with %s, nothing deleted (fix the file, or run delete without ADDR)", inFile(opts.configPath, err), opts.addr.Addr)
		}
		if inEffect != "" && !matchesParent(current, *opts.addr, opts.anyKind) {
			given := opts.addr.Addr
			if !opts.anyKind {
				given = string(opts.addr.Kind) + "://" + given
			}
			return fmt.Errorf("the upstream proxy in effect is %s, not %s; nothing deleted (want delete without ADDR, or delete with the parent's HOST:PORT)", inEffect, given)
		}
	}
	out := config.Edit(cf.data, nil, upstream.DeleteKeys())
	if string(out) != string(cf.data) {
		// The mode stays: a file that held a password may still hold
		// others, and an operator's stricter mode is kept.
		if err := writeFileAtomic(cf.path, out, cf.info.Mode().Perm(), cf.info); err != nil {
			return err
		}
	}
	if inEffect == "" {
		fmt.Fprintf(opts.stderr, "stageproxy: no upstream proxy was set in %s; nothing to delete\n", opts.configPath)
		return nil
	}
	fmt.Fprintf(opts.stderr, "stageproxy: upstream proxy %s deleted from %s; stageproxy connects directly (%s)\n", inEffect, opts.configPath, applyNote)
	return nil
}

// matchesParent reports whether want is one of the parents in c: the same
// HOST:PORT, and the same kind unless anyKind. Host names compare
// case-insensitively and IP addresses by value, so [fd00::1]:3128 matches
// [FD00:0::1]:3128.
func matchesParent(c upstream.Config, want upstream.Parent, anyKind bool) bool {
	for _, p := range []*upstream.Parent{c.HTTP, c.SOCKS} {
		if p != nil && sameHostPort(p.Addr, want.Addr) && (anyKind || p.Kind == want.Kind) {
			return true
		}
	}
	return false
}

func sameHostPort(a, b string) bool {
	if ap, err := netip.ParseAddrPort(a); err == nil {
		bp, err := netip.ParseAddrPort(b)
		return err == nil && ap == bp
	}
	return strings.EqualFold(a, b)
}
