package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print the version of stageproxy",
		Long:    "Version prints \"stageproxy VERSION\", with the module version recorded in the binary, or \"dev\" for a build from a work tree.",
		Example: "  stageproxy version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(stdout, "stageproxy %s\n", version())
			return err
		},
	}
}

// version is the main module's version from the build info: a tag such as
// v1.2.0 for `go install ...@v1.2.0`, otherwise "dev".
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "dev"
	}
	return info.Main.Version
}
