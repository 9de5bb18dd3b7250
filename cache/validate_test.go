package cache

import (
	"net/http"
	"testing"
)

func TestSelectedBy304(t *testing.T) {
	tests := []struct {
		name         string
		stored, h304 http.Header
		want         bool
	}{
		{"no validator in the 304", header("Etag", `"a"`), header("Cache-Control", "max-age=60"), true},
		{"no validator either side", header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), header(), true},
		{"same strong ETag", header("Etag", `"a"`), header("Etag", `"a"`), true},
		{"other strong ETag", header("Etag", `"a"`), header("Etag", `"b"`), false},
		{"strong ETag, nothing stored", header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), header("Etag", `"new"`), false},
		{"strong ETag, weak stored", header("Etag", `W/"a"`), header("Etag", `"a"`), false},
		{"weak ETag, same strong stored", header("Etag", `"a"`), header("Etag", `W/"a"`), true},
		{"weak ETag, same weak stored", header("Etag", `W/"a"`), header("Etag", `W/"a"`), true},
		{"weak ETag, other stored", header("Etag", `W/"a"`), header("Etag", `W/"b"`), false},
		{"weak ETag, nothing stored", header(), header("Etag", `W/"a"`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Status: 200, Header: tt.stored}
			if got := SelectedBy304(e, tt.h304); got != tt.want {
				t.Errorf("SelectedBy304(%v, %v) = %v, want %v", tt.stored, tt.h304, got, tt.want)
			}
		})
	}
}
