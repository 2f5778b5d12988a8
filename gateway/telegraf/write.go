package telegraf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists is wrapped by Write's error when a file it would write exists.
var ErrExists = errors.New("telegraf: file exists")

// Files returns the files of the import by path relative to the output
// directory: gateway.yaml and devices/<class>.yaml. It is empty when
// nothing was importable.
func (r *Result) Files() []ClassFile {
	if !r.Importable() {
		return nil
	}
	files := []ClassFile{{Path: "gateway.yaml", Data: r.Gateway}}
	return append(files, r.Classes...)
}

// Write writes the files into dir (created if needed). Unless force is
// set, it refuses, before writing anything, when one of them exists,
// naming every such file. It returns the paths written.
func (r *Result) Write(dir string, force bool) ([]string, error) {
	files := r.Files()
	if len(files) == 0 {
		return nil, errors.New("telegraf: nothing to write")
	}
	if !force {
		var exist []string
		for _, f := range files {
			p := filepath.Join(dir, f.Path)
			if _, err := os.Lstat(p); err == nil {
				exist = append(exist, p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("telegraf: %w", err)
			}
		}
		if len(exist) > 0 {
			return nil, fmt.Errorf("%w: %v (use --force to overwrite)", ErrExists, exist)
		}
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, fmt.Errorf("telegraf: %w", err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return written, fmt.Errorf("telegraf: %w", err)
		}
		written = append(written, p)
	}
	return written, nil
}
