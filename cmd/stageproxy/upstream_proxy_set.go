package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stageproxy/stageproxy/config"
	"github.com/stageproxy/stageproxy/upstream"
)

// nothingWritten ends the message of set and delete about a config file
// that does not parse.
const nothingWritten = "; nothing written (fix that line, then run this again)"

// applyNote ends the confirmations of set and delete.
const applyNote = "a running stageproxy applies it within 2 s"

// upstreamProxySetFlags are set's flags as typed.
type upstreamProxySetFlags struct {
	user          string
	userSet       bool
	password      string
	passwordSet   bool // -p, --password or kato's --pass
	passwordStdin bool
	noProxy       string
	noProxySet    bool
}

// upstreamProxySetOptions are set's dependencies and validated input.
type upstreamProxySetOptions struct {
	stdin      io.Reader // read when passwordStdin
	stderr     io.Writer
	configPath string

	// parent is the parent to set; its Password is filled from stdin
	// by upstreamProxySetRun when passwordStdin is set.
	parent        upstream.Parent
	passwordStdin bool
	// noProxy is the --no-proxy list, normalised to ", " separators; nil
	// when the flag was not given (the file's noProxy stays), "" to remove.
	noProxy *string
}

func newUpstreamProxySetCmd(g *globals) *cobra.Command {
	var f upstreamProxySetFlags
	cmd := &cobra.Command{
		Use:   "set [-u USER] [--password-stdin | -p PASS] [--no-proxy LIST] ADDR",
		Short: "set the parent proxy",
		Long: `Set makes ADDR the parent proxy, replacing any parent already set (HTTP or
SOCKS), and writes it to the config file, which is created when absent (its
directory is not). Every other line and comment of the file is kept. The
file is replaced atomically and left mode 0600 when it holds a password.

ADDR is HOST:PORT (an HTTP parent), http://[USER[:PASS]@]HOST:PORT,
socks5://[USER[:PASS]@]HOST:PORT, socks4a://[USERID@]HOST:PORT or
socks4://[USERID@]HOST:PORT; IPv6 hosts in brackets. -u and -p override the
user and password in ADDR. --password-stdin reads the password from the
first line of standard input, so that it never shows in ps or a shell
history; -p is kept for scripts written for kato op upstream_proxy set.

--no-proxy LIST names hosts, .domain suffixes, IPs and CIDRs reached
directly; without it the file's list is kept, and --no-proxy '' removes it.`,
		Example: `  stageproxy upstream_proxy set 192.168.0.99:3128
  printf '%s\n' "$PASS" | stageproxy upstream_proxy set -u builder --password-stdin socks5://10.0.0.3:1080
  stageproxy upstream_proxy set --no-proxy '.local, 10.0.0.0/8' http://10.0.0.2:3128
  stageproxy upstream_proxy set socks4a://builder@10.0.0.4:1080`,
		Args: cobra.ExactArgs(1),
		RunE: g.runE(func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			f.userSet = fl.Changed("user")
			f.passwordSet = fl.Changed("password") || fl.Changed("pass")
			f.noProxySet = fl.Changed("no-proxy")
			path, _ := g.configPath()
			opts, err := newUpstreamProxySetOptions(f, args, path, g.stdin, g.stderr)
			if err != nil {
				return &usageError{err}
			}
			return upstreamProxySetRun(cmd.Context(), opts)
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.user, "user", "u", "", "user for the parent (HTTP Basic, SOCKS5) or SOCKS4/4a user id; overrides ADDR's")
	fl.StringVarP(&f.password, "password", "p", "", "password for the parent; shows in ps, prefer --password-stdin")
	fl.StringVar(&f.password, "pass", "", "kato's spelling of --password")
	_ = fl.MarkHidden("pass")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	fl.StringVar(&f.noProxy, "no-proxy", "", "comma list of hosts, .domain suffixes, IPs and CIDRs reached directly ('' removes the list)")
	return cmd
}

// newUpstreamProxySetOptions validates set's flags and ADDR. It does no
// I/O: the password on stdin is read and checked by upstreamProxySetRun.
func newUpstreamProxySetOptions(f upstreamProxySetFlags, args []string, configPath string, stdin io.Reader, stderr io.Writer) (*upstreamProxySetOptions, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one ADDR, got %d arguments", len(args))
	}
	p, err := upstream.ParseAddr(args[0])
	if err != nil {
		return nil, err
	}
	if f.passwordSet && f.passwordStdin {
		return nil, errors.New("-p and --password-stdin both given (want one of them)")
	}
	if f.userSet {
		if f.user == "" {
			return nil, errors.New(`--user: empty user (want a user name, or no -u)`)
		}
		p.User, p.Password = f.user, "" // -u replaces ADDR's user and password
	}
	if f.passwordSet {
		if f.password == "" {
			return nil, errors.New(`--password: empty password (want a password, or no -p)`)
		}
		p.Password = f.password
	}
	if (f.passwordSet || f.passwordStdin) && p.User == "" {
		return nil, fmt.Errorf("a password needs a user (want -u USER, or %s://USER@%s)", p.Kind, p.Addr)
	}
	check := p
	if f.passwordStdin {
		check.Password = "stdin" // so that a SOCKS4 parent refuses it now
	}
	if err := check.Validate(); err != nil {
		return nil, err
	}
	opts := &upstreamProxySetOptions{
		stdin:         stdin,
		stderr:        stderr,
		configPath:    configPath,
		parent:        p,
		passwordStdin: f.passwordStdin,
	}
	if f.noProxySet {
		entries, err := upstream.ParseNoProxy(f.noProxy)
		if err != nil {
			return nil, fmt.Errorf("--no-proxy: %w", err)
		}
		list := strings.Join(entries, ", ")
		opts.noProxy = &list
	}
	return opts, nil
}

// upstreamProxySetRun writes the parent into the config file. Everything
// is checked before the file is touched: the password on stdin, and that
// the existing file parses.
func upstreamProxySetRun(ctx context.Context, opts *upstreamProxySetOptions) error {
	p := opts.parent
	if opts.passwordStdin {
		pw, err := readPasswordLine(opts.stdin)
		if err != nil {
			return &usageError{err}
		}
		p.Password = pw
		if err := p.Validate(); err != nil {
			return &usageError{fmt.Errorf("--password-stdin: %w", err)}
		}
	}
	cf, err := readConfigFile(opts.configPath, nothingWritten)
	if err != nil {
		return err
	}
	var was string
	if cf.cfg != nil {
		if old, err := upstream.FromKeys(cf.cfg); err == nil {
			was = describeParents(old)
		}
	}
	set, del := upstream.SetKeys(p, opts.noProxy)
	out := config.Edit(cf.data, set, del)
	// Read back what is about to be written: a file that serve would
	// refuse, or that means another parent, is never written.
	newCfg, err := config.Parse(cf.path, out)
	if err != nil {
		return fmt.Errorf("internal error: the edited config would not parse: %v; nothing written", err)
	}
	got, err := upstream.FromKeys(newCfg)
	back, other := got.HTTP, got.SOCKS
	if p.Kind != upstream.HTTP {
		back, other = got.SOCKS, got.HTTP
	}
	if err != nil || back == nil || *back != p || other != nil {
		return fmt.Errorf("internal error: the edited config would not read back as %s: %v; nothing written", p, err)
	}
	perm := fs.FileMode(0o644)
	if cf.info != nil {
		perm = cf.info.Mode().Perm()
	}
	if upstream.HasCredential(newCfg) {
		perm = 0o600
	}
	if err := writeFileAtomic(cf.path, out, perm, cf.info); err != nil {
		return err
	}
	var note []string
	if opts.noProxy != nil {
		if *opts.noProxy == "" {
			note = append(note, "no-proxy list removed")
		} else {
			note = append(note, fmt.Sprintf("no-proxy %q", *opts.noProxy))
		}
	}
	if was != "" && was != p.String() {
		note = append(note, "replacing "+was)
	}
	note = append(note, applyNote)
	fmt.Fprintf(opts.stderr, "stageproxy: upstream proxy set to %s in %s (%s)\n", p, opts.configPath, strings.Join(note, "; "))
	return nil
}

// readPasswordLine reads the password from the first line of r, without
// its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	const max = 4096
	if r == nil {
		return "", errors.New("--password-stdin: no standard input (want the password on its first line)")
	}
	line, err := bufio.NewReader(io.LimitReader(r, max)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("--password-stdin: read standard input: %w", err)
	}
	if err == io.EOF && len(line) == max {
		return "", fmt.Errorf("--password-stdin: first line longer than %d bytes (want the password on its first line)", max-1)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("--password-stdin: no password on standard input (want it on the first line)")
	}
	return line, nil
}

// describeParents is the parent in effect as show prints it: "" for none,
// the HTTP parent "via" the SOCKS one when both are set, as Polipo chains
// them. Passwords are redacted.
func describeParents(c upstream.Config) string {
	switch {
	case c.HTTP != nil && c.SOCKS != nil:
		return c.HTTP.String() + " via " + c.SOCKS.String()
	case c.HTTP != nil:
		return c.HTTP.String()
	case c.SOCKS != nil:
		return c.SOCKS.String()
	}
	return ""
}

// configFile is the config file as read by set, delete and show.
type configFile struct {
	path string         // the file to write: symbolic links resolved
	data []byte         // nil when the file does not exist
	cfg  *config.Config // nil when the file does not exist
	info fs.FileInfo    // nil when the file does not exist
}

// readConfigFile reads and parses the config file. A missing file is not an
// error. A file that does not parse is a runtime error (exit 1, not the 2 of
// bad input: the command line is fine), naming FILE:LINE and ending with
// parseNote.
func readConfigFile(path, parseNote string) (configFile, error) {
	cf := configFile{path: path}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		cf.path = real // replace the file, not the link
	}
	info, err := os.Stat(cf.path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return cf, fmt.Errorf("config %s: %w (check --config and $STAGEPROXY_CONFIG)", path, err)
	}
	if !info.Mode().IsRegular() {
		return cf, fmt.Errorf("config %s: not a regular file (want a file for --config or $STAGEPROXY_CONFIG)", path)
	}
	data, err := os.ReadFile(cf.path)
	if err != nil {
		return cf, fmt.Errorf("config %s: %w (check --config and $STAGEPROXY_CONFIG)", path, err)
	}
	cfg, err := config.Parse(path, data)
	if err != nil {
		// %v, not %w: a *config.ParseError would make this exit 2.
		return cf, fmt.Errorf("%v%s", err, parseNote)
	}
	cf.data, cf.cfg, cf.info = data, cfg, info
	return cf, nil
}

// inFile is err's message naming the config file path, unless it names
// its file and line already, as a *config.ParseError does.
func inFile(path string, err error) string {
	var pe *config.ParseError
	if errors.As(err, &pe) {
		return err.Error()
	}
	return path + ": " + err.Error()
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory (created 0600, so a password is never readable by others, even
// for a moment), written, given perm and the old file's owner, synced, then
// renamed over path. A reader sees the old file or the new one, never a
// part. On failure path is untouched and the temporary file removed.
func writeFileAtomic(path string, data []byte, perm fs.FileMode, old fs.FileInfo) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write config %s: directory %s does not exist (create it, or name another file with --config)", path, dir)
		}
		return fmt.Errorf("write config %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write config %s: %w; nothing written", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write config %s: %w; nothing written", path, err)
	}
	if uid, gid, ok := fileOwner(old); ok && (uid != os.Getuid() || gid != os.Getgid()) {
		// Keep the owner, so that a stageproxy running as that user
		// can still read a 0600 file that root edited.
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("write config %s: keep its owner %d:%d: %w; nothing written (run as that user or as root)", path, uid, gid, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write config %s: %w; nothing written", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write config %s: %w; nothing written", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write config %s: %w; nothing written", path, err)
	}
	// Make the rename itself durable; the new file is in place either
	// way, so a failure here is not reported.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// fileOwner returns the owner of the file fi describes, where the platform
// records one (syscall.Stat_t's Uid and Gid). It reads them by name so that
// this file builds on every platform.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	if fi == nil {
		return 0, 0, false
	}
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, 0, false
	}
	u, g := v.FieldByName("Uid"), v.FieldByName("Gid")
	if !u.IsValid() || !g.IsValid() || !u.CanUint() || !g.CanUint() {
		return 0, 0, false
	}
	return int(u.Uint()), int(g.Uint()), true
}
