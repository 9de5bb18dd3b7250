package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stageproxy/stageproxy/config"
)

// defaultConfigPath is used when neither --config nor $STAGEPROXY_CONFIG
// names a file.
const defaultConfigPath = "/etc/stageproxy/stageproxy.conf"

// run executes the command line args and returns the exit status: 0 done,
// 1 a runtime failure, 2 bad usage or bad input (as cmd/go and flag do).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// runEnv is run with the environment as a function, for tests.
func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := newRootCmd(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	name := "stageproxy"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err.Error()))
	return exitCode(err, g.started)
}

// exitCode is 2 for errors cobra reports before a command runs (unknown
// command or flag, wrong number of arguments), for usageErrors and for
// config files that do not parse; 1 for everything else.
func exitCode(err error, started bool) int {
	var ue *usageError
	var pe *config.ParseError
	if !started || errors.As(err, &ue) || errors.As(err, &pe) {
		return 2
	}
	return 1
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// usageError is bad usage or bad input: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// globals are the dependencies and persistent flags every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	configFlag     string // --config
	// started is set when a command's RunE begins: an error before that
	// came from cobra's own parsing and is a usage error.
	started bool
}

// configPath resolves the config file: --config, then $STAGEPROXY_CONFIG,
// then defaultConfigPath. explicit is false only for the default path, which
// may be missing.
func (g *globals) configPath() (path string, explicit bool) {
	if g.configFlag != "" {
		return g.configFlag, true
	}
	if p := g.getenv("STAGEPROXY_CONFIG"); p != "" {
		return p, true
	}
	return defaultConfigPath, false
}

// runE marks the command as started, so that its errors are runtime errors
// (exit 1) unless they are usageErrors.
func (g *globals) runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		g.started = true
		return f(cmd, args)
	}
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "stageproxy <command> [flags]",
		Short: "caching HTTP forward proxy for build and staging containers",
		Long: `stageproxy is a caching HTTP forward proxy for the package managers (pip,
npm, ...) that run inside build and staging containers: a drop-in
replacement for Polipo. It keeps downloads in a bounded in-memory cache and
reads Polipo's configuration file syntax.

The configuration file is --config FILE, else $STAGEPROXY_CONFIG, else
` + defaultConfigPath + `.`,
		Example: `  stageproxy serve
  stageproxy serve --listen 127.0.0.1:0 --cache-size 200MB
  stageproxy version`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: g.runE(func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing command (want serve, upstream_proxy, ca or version; see stageproxy --help)")
		}),
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v (see %s --help)", err, cmd.CommandPath())
	})
	root.PersistentFlags().StringVar(&g.configFlag, "config", "",
		"config file (default $STAGEPROXY_CONFIG, then "+defaultConfigPath+")")
	root.AddCommand(newServeCmd(g), newVersionCmd(g.stdout))
	root.AddCommand(newUpstreamProxyCmd(g))
	root.AddCommand(newCACmd(g))
	return root
}
