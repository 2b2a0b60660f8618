package events

import (
	"context"
	"strings"
	"testing"

	"github.com/icsnare/icsnare/protocols"
)

type testKind struct{ name string }

func (k testKind) Name() string    { return k.name }
func (k testKind) NewOptions() any { return &struct{}{} }
func (k testKind) Open(context.Context, any, Env) (Sink, error) {
	return nil, nil
}

func TestRegistry(t *testing.T) {
	Register(testKind{"zz-test"})
	if _, ok := Lookup("zz-test"); !ok {
		t.Fatal("registered kind not found")
	}
	if o, err := NewOptions("zz-test"); err != nil || o == nil {
		t.Fatalf("NewOptions = %v, %v", o, err)
	}
	if _, err := NewOptions("no-such"); err == nil || !strings.Contains(err.Error(), "zz-test") {
		t.Fatalf("NewOptions of an unknown kind: %v, want an error naming the kinds there are", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate kind did not panic")
		}
	}()
	Register(testKind{"zz-test"})
}

func TestAppendJSONEscapes(t *testing.T) {
	e := &protocols.Event{Type: "x\"<\n", Fields: []protocols.Field{{Key: "k", Value: "\xff\u2028"}}}
	got := string(AppendJSON(nil, e))
	for _, want := range []string{`"event_type":"x\"\u003c\n"`, `"k":"\ufffd\u2028"`} {
		if !strings.Contains(got, want) {
			t.Errorf("AppendJSON = %s, want it to contain %s", got, want)
		}
	}
}

// rawList is a field value that writes itself (protocols.JSONAppender).
type rawList []int

func (l rawList) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, x := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, byte('0'+x))
	}
	return append(b, ']')
}

func TestAppendJSONAppender(t *testing.T) {
	e := &protocols.Event{Type: "x", Fields: []protocols.Field{{Key: "l", Value: rawList{1, 2}}}}
	if got := string(AppendJSON(nil, e)); !strings.Contains(got, `"l":[1,2]`) {
		t.Errorf("AppendJSON = %s, want the value's own JSON", got)
	}
}
