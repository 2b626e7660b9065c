package logring

import (
	"fmt"
	"reflect"
	"testing"
)

func TestRingKeepsLastLines(t *testing.T) {
	r := &Ring{Max: 3}
	for i := range 5 {
		fmt.Fprintf(r, "line %d\n", i)
	}
	r.Write([]byte("partial"))
	if got := r.Tail(10); !reflect.DeepEqual(got, []string{"line 2", "line 3", "line 4"}) {
		t.Fatalf("Tail = %q", got)
	}
	r.Write([]byte(" done\n"))
	if got := r.Tail(1); !reflect.DeepEqual(got, []string{"partial done"}) {
		t.Fatalf("Tail(1) = %q", got)
	}
}
