package main

import "github.com/spf13/cobra"

// newUpstreamProxyCmd is the parent of set, delete and show; it only holds
// the help text.
func newUpstreamProxyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upstream_proxy <command>",
		Short: "set, delete or show the parent proxy",
		Long: `The upstream_proxy commands set, delete or show the parent proxy that
stageproxy forwards through, as kato op upstream_proxy did for Polipo. The
setting lives
in the config file (Polipo's parentProxy, parentAuthCredentials,
socksParentProxy, socksProxyType, socksUserName, socksAuthCredentials and
noProxy keys); a running stageproxy applies a change within 2 s, without a
restart.

ADDR is one of:

  HOST:PORT                           an HTTP parent, e.g. 192.168.0.99:3128
  http://[USER[:PASS]@]HOST:PORT      an HTTP parent, with Basic credentials
  socks5://[USER[:PASS]@]HOST:PORT    a SOCKS5 parent (socks5h:// is the same)
  socks4a://[USERID@]HOST:PORT        a SOCKS4a parent, with a user id
  socks4://[USERID@]HOST:PORT         a SOCKS4 parent, with a user id

IPv6 hosts go in brackets: [fd00::1]:3128. Prefer --password-stdin to a
password in ADDR or -p, which show in ps and in the shell history.

There is one parent: set replaces it, whatever its kind. The config file is
--config FILE, else $STAGEPROXY_CONFIG, else ` + defaultConfigPath + `.`,
		Example: `  stageproxy upstream_proxy set 192.168.0.99:3128
  printf '%s\n' "$PASS" | stageproxy upstream_proxy set -u builder --password-stdin socks5://10.0.0.3:1080
  stageproxy upstream_proxy set --no-proxy '.local, 10.0.0.0/8' http://10.0.0.2:3128
  stageproxy upstream_proxy show
  stageproxy upstream_proxy delete 192.168.0.99:3128`,
		// NoArgs with a RunE makes an unknown subcommand a usage error
		// (exit 2) rather than help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newUpstreamProxySetCmd(g), newUpstreamProxyDeleteCmd(g), newUpstreamProxyShowCmd(g))
	return cmd
}
