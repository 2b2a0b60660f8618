package profiles

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Node is one XML element of a template file, with the position it came from.
// Protocol packages walk Nodes to parse their own profile sections.
type Node struct {
	Name     string
	Attrs    []xml.Attr
	Text     string // character data directly inside the element, untrimmed
	Children []*Node
	File     string
	Line     int
}

// Error is a template error that names the file, line and element.
type Error struct {
	File    string
	Line    int
	Element string
	Err     error
}

func (e *Error) Error() string {
	if e.Element == "" {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: <%s>: %v", e.File, e.Line, e.Element, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error positioned at n.
func (n *Node) Errorf(format string, args ...any) error {
	return &Error{File: n.File, Line: n.Line, Element: n.Name, Err: fmt.Errorf(format, args...)}
}

// Attr returns the value of the attribute name and whether it was present.
func (n *Node) Attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// Child returns the first child element called name, or nil.
func (n *Node) Child(name string) *Node {
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ChildrenNamed returns every child element called name.
func (n *Node) ChildrenNamed(name string) []*Node {
	var out []*Node
	for _, c := range n.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// TextTrim returns the element's character data without surrounding white space.
func (n *Node) TextTrim() string { return strings.TrimSpace(n.Text) }

// ChildText returns the trimmed text of the first child called name and whether it exists.
func (n *Node) ChildText(name string) (string, bool) {
	c := n.Child(name)
	if c == nil {
		return "", false
	}
	return c.TextTrim(), true
}

// maxXMLDepth bounds element nesting so a hostile template cannot exhaust the stack.
const maxXMLDepth = 64

// ParseXML reads one XML document into a Node tree. file names the source in errors.
func ParseXML(file string, r io.Reader) (*Node, error) {
	d := xml.NewDecoder(r)
	var stack []*Node
	var root *Node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &Error{File: file, Line: se.Line, Err: fmt.Errorf("malformed XML: %s", se.Msg)}
			}
			l, _ := d.InputPos()
			return nil, &Error{File: file, Line: l, Err: fmt.Errorf("malformed XML: %w", err)}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// InputPos after the token points past it; the line where the token began is more useful.
			// The decoder's position is just past the tag, which for one-line tags is its line.
			line, _ := d.InputPos()
			n := &Node{Name: t.Name.Local, Attrs: append([]xml.Attr(nil), t.Attr...), File: file, Line: line}
			if len(stack) == 0 {
				if root != nil {
					return nil, n.Errorf("second root element")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			}
			stack = append(stack, n)
			if len(stack) > maxXMLDepth {
				return nil, n.Errorf("elements nested deeper than %d", maxXMLDepth)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			}
		}
	}
	if root == nil {
		return nil, &Error{File: file, Line: 1, Err: errors.New("no root element")}
	}
	return root, nil
}
