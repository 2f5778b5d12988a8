package telegraf

import (
	"strconv"
	"strings"
)

// lineIndex maps the keys of a TOML file to the lines they are written
// on. BurntSushi/toml parses the file and checks its syntax, but its
// MetaData keeps key positions private (Keys and Undecoded have no
// lines, and no array indices); a report that names "telegraf.conf:47"
// needs them, so scanLines reads the file a second time for positions
// only.
//
// A key is the path of names from the root, each array element a
// segment "[i]" after its array's name: the third field of the second
// [[inputs.modbus.request]] of the first [[inputs.modbus]] is
//
//	inputs · modbus · [0] · request · [1] · fields · [2]
//
// joined by pathSep. Arrays of tables ([[x]]) and arrays of inline tables
// (x = [{...}]) give the same paths, as the decoded values do.
type lineIndex map[string]int

// pathSep joins path segments: a byte no TOML key the importer reads
// holds, so a quoted key with a dot stays one segment.
const pathSep = "\x1f"

// join appends segments to a path.
func join(path string, segs ...string) string {
	for _, s := range segs {
		if path == "" {
			path = s
		} else {
			path += pathSep + s
		}
	}
	return path
}

// elem is the segment of array element i.
func elem(i int) string { return "[" + strconv.Itoa(i) + "]" }

// scanLines indexes the lines of src's keys, table headers and array
// elements. It expects a file BurntSushi/toml accepted; on anything it
// does not understand it stops and returns what it has, so a line may be
// missing (0) but is never wrong.
func scanLines(src string) lineIndex {
	s := &lineScanner{src: src, line: 1, lines: lineIndex{}, arrays: map[string]int{}}
	s.document()
	return s.lines
}

type lineScanner struct {
	src   string
	i     int
	line  int
	lines lineIndex
	// arrays counts the elements of each array of tables ([[x]]) by its
	// resolved path, so a later header [x.y] or [[x.y]] resolves x to its
	// last element.
	arrays map[string]int
	bad    bool
}

func (s *lineScanner) eof() bool { return s.bad || s.i >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *lineScanner) next() byte {
	c := s.src[s.i]
	s.i++
	if c == '\n' {
		s.line++
	}
	return c
}

// space skips blanks, and with newlines also line ends and comments.
func (s *lineScanner) space(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		case c == '\n' && newlines:
			s.next()
		default:
			return
		}
	}
}

func (s *lineScanner) document() {
	table := ""
	for {
		s.space(true)
		if s.eof() {
			return
		}
		line := s.line
		if s.peek() == '[' {
			s.next()
			array := s.peek() == '['
			if array {
				s.next()
			}
			segs := s.key()
			s.space(false)
			if s.eof() || s.next() != ']' || array && (s.eof() || s.next() != ']') || len(segs) == 0 {
				s.bad = true
				return
			}
			if array {
				parent := s.resolve(segs[:len(segs)-1])
				full := join(parent, segs[len(segs)-1])
				table = join(full, elem(s.arrays[full]))
				s.arrays[full]++
			} else {
				table = s.resolve(segs)
			}
			s.lines[table] = line
			continue
		}
		segs := s.key()
		s.space(false)
		if len(segs) == 0 || s.eof() || s.next() != '=' {
			s.bad = true
			return
		}
		path := join(table, segs...)
		s.lines[path] = line
		s.space(false)
		s.value(path)
	}
}

// resolve turns a header's names into a path, each name that is an array
// of tables followed by the index of its last element.
func (s *lineScanner) resolve(segs []string) string {
	path := ""
	for _, seg := range segs {
		path = join(path, seg)
		if n := s.arrays[path]; n > 0 {
			path = join(path, elem(n-1))
		}
	}
	return path
}

// key reads a dotted key: bare, "basic" or 'literal' names.
func (s *lineScanner) key() []string {
	var segs []string
	for {
		s.space(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			str, ok := s.str()
			if !ok {
				s.bad = true
				return nil
			}
			segs = append(segs, str)
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.next()
			}
			segs = append(segs, s.src[start:s.i])
		default:
			s.bad = true
			return nil
		}
		s.space(false)
		if s.peek() != '.' {
			return segs
		}
		s.next()
	}
}

func isBare(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// value skips one value, indexing the elements of arrays and the keys of
// inline tables under path.
func (s *lineScanner) value(path string) {
	switch s.peek() {
	case '"', '\'':
		if _, ok := s.str(); !ok {
			s.bad = true
		}
	case '[':
		s.next()
		for n := 0; ; n++ {
			s.space(true)
			if s.eof() {
				s.bad = true
				return
			}
			if s.peek() == ']' {
				s.next()
				return
			}
			p := join(path, elem(n))
			s.lines[p] = s.line
			s.value(p)
			s.space(true)
			switch {
			case s.eof():
				s.bad = true
				return
			case s.peek() == ',':
				s.next()
			case s.peek() != ']':
				s.bad = true
				return
			}
		}
	case '{':
		s.next()
		for {
			s.space(true) // TOML 1.1 lets inline tables span lines
			if s.eof() {
				s.bad = true
				return
			}
			if s.peek() == '}' {
				s.next()
				return
			}
			line := s.line
			segs := s.key()
			s.space(false)
			if len(segs) == 0 || s.eof() || s.next() != '=' {
				s.bad = true
				return
			}
			p := join(path, segs...)
			s.lines[p] = line
			s.space(false)
			s.value(p)
			s.space(true)
			switch {
			case s.eof():
				s.bad = true
				return
			case s.peek() == ',':
				s.next()
			case s.peek() != '}':
				s.bad = true
				return
			}
		}
	default:
		// A number, boolean or date: up to the next delimiter. A date
		// may hold a space ("1979-05-27 07:32:00").
		start := s.i
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.next()
		}
		if strings.TrimSpace(s.src[start:s.i]) == "" {
			s.bad = true
		}
	}
}

// str reads a basic, literal or multi-line string and returns its text
// (escapes left as written: keys the importer looks up are plain).
func (s *lineScanner) str() (string, bool) {
	q := s.next()
	triple := strings.HasPrefix(s.src[s.i:], string([]byte{q, q}))
	if triple {
		s.next()
		s.next()
	}
	start := s.i
	for !s.eof() {
		c := s.peek()
		switch {
		case c == '\\' && q == '"':
			s.next()
			if !s.eof() {
				s.next()
			}
		case c == q && !triple:
			text := s.src[start:s.i]
			s.next()
			return text, true
		case c == q && strings.HasPrefix(s.src[s.i:], string([]byte{q, q, q})):
			// Up to two more quotes may end the string's content.
			for strings.HasPrefix(s.src[s.i+1:], string([]byte{q, q, q})) {
				s.next()
			}
			text := s.src[start:s.i]
			s.next()
			s.next()
			s.next()
			return text, true
		case c == '\n' && !triple:
			return "", false
		default:
			s.next()
		}
	}
	return "", false
}
