package proxy

import (
	"net/http"
	"reflect"
	"testing"
)

func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "fixed list",
			in: http.Header{
				"Keep-Alive": {"timeout=5"}, "Te": {"trailers"}, "Upgrade": {"h2c"},
				"Proxy-Authorization": {"Basic c2VjcmV0"}, "Proxy-Connection": {"keep-alive"},
				"Proxy-Authenticate": {"Basic"}, "Trailer": {"X"}, "Transfer-Encoding": {"chunked"},
				"Accept": {"*/*"},
			},
			want: http.Header{"Accept": {"*/*"}},
		},
		{
			name: "names listed in Connection",
			in: http.Header{
				"Connection": {"X-Foo, x-bar", "close"},
				"X-Foo":      {"1"}, "X-Bar": {"2"}, "X-Baz": {"3"},
			},
			want: http.Header{"X-Baz": {"3"}},
		},
		{
			name: "empty tokens ignored",
			in:   http.Header{"Connection": {" , ,"}, "Etag": {`"x"`}},
			want: http.Header{"Etag": {`"x"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			removeHopByHop(h)
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("removeHopByHop(%v) = %v, want %v", tt.in, h, tt.want)
			}
		})
	}
}

func TestViaHops(t *testing.T) {
	h := http.Header{"Via": {"1.1 squid, 1.1 stageproxy", "1.1 stageproxy"}}
	if got := viaHops(h); got != 2 {
		t.Errorf("viaHops(%v) = %d, want 2", h, got)
	}
}
