// Package e2e drives the stageproxy binary with real pip and npm against
// registries the tests serve on 127.0.0.1. Its tests carry the e2e build
// tag, which keeps `go test ./...` quick and free of external tools; run
// them with `make e2e` (go test -tags e2e ./e2e/). This file, untagged,
// holds only the package comment so that the package exists for untagged
// builds too.
package e2e
