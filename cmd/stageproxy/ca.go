package main

import "github.com/spf13/cobra"

// newCACmd is the parent of init; it only holds the help text.
func newCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca <command>",
		Short: "make the CA that signs certificates for intercepted registry hosts",
		Long: `The ca commands manage stageproxy's own certificate authority. With
serve --mitm-ca DIR --mitm-hosts LIST, stageproxy intercepts HTTPS to the
hosts in LIST (exact names, or *.suffix for every name under suffix), so
that it can cache their downloads, and shows the clients certificates that
this CA signs. The clients must trust DIR/ca.crt; DIR/ca.key stays on the
proxy's host, mode 0600.

ca init makes the CA. It never overwrites one: clients may already trust it.`,
		Example: `  stageproxy ca init --out /etc/stageproxy/ca
  stageproxy serve --mitm-ca /etc/stageproxy/ca --mitm-hosts pypi.org,files.pythonhosted.org,registry.npmjs.org`,
		// NoArgs with a RunE makes an unknown subcommand a usage error
		// (exit 2) rather than help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCAInitCmd(g))
	return cmd
}
