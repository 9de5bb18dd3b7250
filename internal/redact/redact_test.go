package redact

import "testing"

func TestUserinfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"10.0.0.2:3128", "10.0.0.2:3128"},
		{"[fd00::1]:3128", "[fd00::1]:3128"},
		{"bob:secret@10.0.0.2:3128", "bob:xxxxx@10.0.0.2:3128"},
		{"http://bob:secret@10.0.0.2:3128", "http://bob:xxxxx@10.0.0.2:3128"},
		{"socks5://u:secret@[fd00::1]:1080/", "socks5://u:xxxxx@[fd00::1]:1080/"},
		{"http://bob:se@cr:et@h:1", "http://bob:xxxxx@h:1"},
		{"http://bob:se://cret@h:1", "http://bob:xxxxx@h:1"},
		{"bob:p://w@h:1", "bob:xxxxx@h:1"},
		{"parentProxy: http://bob:secret@h:1", "parentProxy:xxxxx@h:1"},
		{"parentProxy bob:secret@h:1", "parentProxy bob:xxxxx@h:1"},
		{"\"http://bob:secret@h:1", "\"http://bob:xxxxx@h:1"},
		{"socks4a://builder@h:1", "socks4a://builder@h:1"},
		{"builder@h:1", "builder@h:1"},
		{":secret@h:1", ":xxxxx@h:1"},
	}
	for _, tt := range tests {
		if got := Userinfo(tt.in); got != tt.want {
			t.Errorf("Userinfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
