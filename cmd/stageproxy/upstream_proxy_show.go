package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stageproxy/stageproxy/upstream"
)

// upstreamProxyShowOptions are show's dependencies.
type upstreamProxyShowOptions struct {
	stdout     io.Writer
	configPath string
}

func newUpstreamProxyShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "print the parent proxy in effect",
		Long: `Show prints the parent proxy that the config file sets, as a URL with the
password replaced by xxxxx, and its no-proxy list on a second line; or
"none (direct)". When an HTTP and a SOCKS parent are both set, as Polipo
allows, the HTTP parent is reached through the SOCKS one: "HTTP via SOCKS".
A password is never printed.`,
		Example: `  stageproxy upstream_proxy show
  stageproxy upstream_proxy show --config ./stageproxy.conf`,
		Args: cobra.NoArgs,
		RunE: g.runE(func(cmd *cobra.Command, args []string) error {
			path, _ := g.configPath()
			return upstreamProxyShowRun(cmd.Context(), newUpstreamProxyShowOptions(path, g.stdout))
		}),
	}
}

// newUpstreamProxyShowOptions builds show's options; show takes no input to
// validate.
func newUpstreamProxyShowOptions(configPath string, stdout io.Writer) *upstreamProxyShowOptions {
	return &upstreamProxyShowOptions{stdout: stdout, configPath: configPath}
}

// upstreamProxyShowRun prints the parent in effect. A missing config file
// means no parent.
func upstreamProxyShowRun(ctx context.Context, opts *upstreamProxyShowOptions) error {
	cf, err := readConfigFile(opts.configPath, "")
	if err != nil {
		return err
	}
	var c upstream.Config
	if cf.cfg != nil {
		if c, err = upstream.FromKeys(cf.cfg); err != nil {
			// Not %w: a *config.ParseError would make this exit 2,
			// and the command line is fine.
			return fmt.Errorf("%s (fix the file, or run upstream_proxy set or delete)", inFile(opts.configPath, err))
		}
	}
	parent := describeParents(c)
	if parent == "" {
		_, err := fmt.Fprintln(opts.stdout, "none (direct)")
		return err
	}
	out := parent + "\n"
	if len(c.NoProxy) > 0 {
		out += "no-proxy: " + strings.Join(c.NoProxy, ", ") + "\n"
	}
	_, err = io.WriteString(opts.stdout, out)
	return err
}
