package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The ACLs are stored in the data dir as one JSON file (aclFile), replaced
// atomically (temporary file, fsync, rename, fsync of the directory) on
// every change, before the change takes effect:
//
//	{"version": 1, "acls": [
//	  {"resource_type": "TOPIC", "name": "plant-a.", "pattern_type": "PREFIXED",
//	   "principal": "User:gateway-a", "host": "*", "operation": "WRITE", "permission": "ALLOW"}
//	]}
//
// Names are Kafka's enum names. The file is read only when authorization
// is enabled; a file that cannot be read or fails validation stops the
// start-up with an error naming it.
const (
	aclFile        = "acls.json"
	aclFileVersion = 1
)

type aclFileJSON struct {
	Version int           `json:"version"`
	ACLs    []aclJSONItem `json:"acls"`
}

type aclJSONItem struct {
	ResourceType string `json:"resource_type"`
	Name         string `json:"name"`
	PatternType  string `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// loadACLs reads dir's ACLs, sorted and without duplicates; none when the
// file does not exist.
func loadACLs(dir string) ([]aclEntry, error) {
	path := filepath.Join(dir, aclFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ACL store %s: %w", path, err)
	}
	var f aclFileJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("ACL store %s is not valid JSON (%v); restore it from a backup, or move it aside to start with no ACLs (only super users are then authorized)", path, err)
	}
	if f.Version != aclFileVersion {
		return nil, fmt.Errorf("ACL store %s has version %d; this broker reads version %d", path, f.Version, aclFileVersion)
	}
	acls := make([]aclEntry, 0, len(f.ACLs))
	for i, it := range f.ACLs {
		e, err := it.entry()
		if err == nil {
			if msg := validateNewACL(e); msg != "" {
				err = errors.New(msg)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("ACL store %s: ACL %d: %w", path, i, err)
		}
		acls = append(acls, e)
	}
	return sortACLs(acls), nil
}

func (it aclJSONItem) entry() (aclEntry, error) {
	var e aclEntry
	var err error
	if e.ResourceType, err = enumParse(resourceTypeNames, "resource_type", it.ResourceType); err != nil {
		return e, err
	}
	if e.Pattern, err = enumParse(patternTypeNames, "pattern_type", it.PatternType); err != nil {
		return e, err
	}
	if e.Operation, err = enumParse(operationNames, "operation", it.Operation); err != nil {
		return e, err
	}
	if e.Permission, err = enumParse(permissionNames, "permission", it.Permission); err != nil {
		return e, err
	}
	e.Name, e.Principal, e.Host = it.Name, it.Principal, it.Host
	return e, nil
}

// saveACLs replaces dir's ACL store with acls (sorted).
func saveACLs(dir string, acls []aclEntry) error {
	f := aclFileJSON{Version: aclFileVersion, ACLs: make([]aclJSONItem, 0, len(acls))}
	for _, e := range acls {
		f.ACLs = append(f.ACLs, aclJSONItem{
			ResourceType: enumName(resourceTypeNames, e.ResourceType), Name: e.Name,
			PatternType: enumName(patternTypeNames, e.Pattern), Principal: e.Principal, Host: e.Host,
			Operation: enumName(operationNames, e.Operation), Permission: enumName(permissionNames, e.Permission),
		})
	}
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, aclFile, append(raw, '\n')); err != nil {
		return fmt.Errorf("write ACL store %s: %w", filepath.Join(dir, aclFile), err)
	}
	return nil
}

// sortACLs sorts acls in place and drops duplicates.
func sortACLs(acls []aclEntry) []aclEntry {
	slices.SortFunc(acls, aclEntry.compare)
	return slices.Compact(acls)
}

// aclOfCreation is the ACL a CreateAcls creation asks for.
func aclOfCreation(c kmsg.CreateACLsRequestCreation) aclEntry {
	return aclEntry{
		ResourceType: c.ResourceType, Name: c.ResourceName, Pattern: c.ResourcePatternType,
		Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType,
	}
}
