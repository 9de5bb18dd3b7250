package mitm

import "testing"

func TestParseHosts(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"", "", ""},
		{" , ", "", ""},
		{"pypi.org,files.pythonhosted.org", "pypi.org, files.pythonhosted.org", ""},
		{"PyPI.org. *.PythonHosted.org\tregistry.npmjs.org", "pypi.org, *.pythonhosted.org, registry.npmjs.org", ""},
		{"pypi.org, pypi.org.,PYPI.ORG", "pypi.org", ""},
		{"127.0.0.1, [::1], 0:0::2", "127.0.0.1, ::1, ::2", ""},
		{"pypi.org:443", "", `invalid host "pypi.org:443" (want names like pypi.org or *.pythonhosted.org)`},
		{"https://pypi.org", "", `invalid host "https://pypi.org" (want names like pypi.org or *.pythonhosted.org)`},
		{"*", "", `invalid host "*" (want names like pypi.org or *.pythonhosted.org)`},
		{"*.", "", `invalid host "*." (want names like pypi.org or *.pythonhosted.org)`},
		{"*.*.org", "", `invalid host "*.*.org" (want names like pypi.org or *.pythonhosted.org)`},
		{"files.*.org", "", `invalid host "files.*.org" (want names like pypi.org or *.pythonhosted.org)`},
		{".pythonhosted.org", "", `invalid host ".pythonhosted.org" (want names like pypi.org or *.pythonhosted.org)`},
		{"a..b", "", `invalid host "a..b" (want names like pypi.org or *.pythonhosted.org)`},
		{"-a.org", "", `invalid host "-a.org" (want names like pypi.org or *.pythonhosted.org)`},
		{"pypi.org,ex ample;org", "", `invalid host "ample;org" (want names like pypi.org or *.pythonhosted.org)`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			h, err := ParseHosts(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("ParseHosts(%q) = %v, want %s", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHosts(%q) = %v", tc.in, err)
			}
			if got := h.String(); got != tc.want {
				t.Errorf("ParseHosts(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
			if h2, err := ParseHosts(h.String()); err != nil || h2.String() != h.String() {
				t.Errorf("ParseHosts(%q) = %v, %v; want it to read back", h.String(), h2, err)
			}
		})
	}
}

func TestHostsMatch(t *testing.T) {
	h, err := ParseHosts("pypi.org, *.pythonhosted.org, registry.npmjs.org, 10.0.0.5, ::1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"pypi.org", true},
		{"PyPI.Org", true},
		{"pypi.org.", true},
		{"www.pypi.org", false}, // exact names match only themselves
		{"files.pythonhosted.org", true},
		{"a.b.pythonhosted.org", true},
		{"pythonhosted.org", false}, // *.suffix is not suffix itself
		{"evilpythonhosted.org", false},
		{"pythonhosted.org.evil.com", false},
		{"registry.npmjs.org", true},
		{"npmjs.org", false},
		{"10.0.0.5", true},
		{"10.0.0.6", false},
		{"::1", true},
		{"[::1]", true},
		{"0:0::1", true},
		{"::ffff:10.0.0.5", true},
		{"", false},
		{"pypi.org:443", false},
	}
	for _, tc := range tests {
		if got := h.Match(tc.host); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	var zero Hosts
	if zero.Match("pypi.org") || zero.String() != "" {
		t.Error("zero Hosts matches pypi.org or prints something")
	}
	empty, err := ParseHosts("")
	if err != nil || empty.Match("pypi.org") {
		t.Errorf(`ParseHosts("") = %v, %v; want a list matching nothing`, empty, err)
	}
}
