package mongots

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// CommandError is a command MongoDB refused for a cause that retrying
// cannot remove: a missing privilege, an option the server does not
// know, a conflicting index, an unknown write concern. Its message names
// the namespace, the command, the server's code and how to fix it. It
// unwraps to the driver's error.
type CommandError struct {
	Namespace string // database.collection
	Command   string // the command's name, such as "create" or "insert"
	Code      int    // the server's error code; 0 when Store did not send the command, which the server cannot run (ErrNotMongos)
	Fix       string // what to change
	Err       error  // the driver's error; with Code 0, why the command was not sent
}

func (e *CommandError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("mongots: cannot run %s on %s: %v; %s", e.Command, e.Namespace, e.Err, e.Fix)
	}
	return fmt.Sprintf("mongots: MongoDB refused %s on %s: %v; %s", e.Command, e.Namespace, e.Err, e.Fix)
}

// Unwrap returns the driver's error.
func (e *CommandError) Unwrap() error { return e.Err }

// MongoDB error codes that retrying the same command never gets past.
const (
	codeBadValue                        = 2
	codeFailedToParse                   = 9
	codeUnauthorized                    = 13
	codeTypeMismatch                    = 14
	codeAuthenticationFailed            = 18
	codeIllegalOperation                = 20
	codeIndexNotFound                   = 27
	codeCommandNotFound                 = 59
	codeCannotCreateIndex               = 67
	codeInvalidOptions                  = 72
	codeInvalidNamespace                = 73
	codeUnknownReplWriteConcern         = 79
	codeIndexOptionsConflict            = 85
	codeIndexKeySpecsConflict           = 86
	codeUnsatisfiableWriteConcern       = 100
	codeCommandNotSupported             = 115
	codeCommandNotSupportedOnView       = 166
	codeInvalidIndexSpecificationOption = 197
	codeUnknownField                    = 40415   // IDL: "BSON field '…' is an unknown field"
	codeBadBucketMaxSpan                = 5510500 // 6.0: bucketMaxSpanSeconds other than the granularity's
	codeBSONObjectTooLarge              = 10334   // a document (or its bucket) over 16 MB
)

// RolesHint names the privileges the sink's MongoDB user needs; an
// Unauthorized error repeats it.
const RolesHint = "the connection's user lacks a privilege for it: the sink needs the built-in role readWrite on its database, " +
	"and dbAdmin there (or a role granting collMod, which changes a TTL), and clusterManager on admin when it shards collections (mongodb.shard) " +
	"(see docs/OPERATIONS.md, \"MongoDB roles\")"

// shardRefusedFix is the fix of a shardCollection the mongos refused.
const shardRefusedFix = "the mongos refused to shard the collection on factorywire's key: check the collection against " +
	"docs/OPERATIONS.md, \"Past one replica set\" (an index of the key's fields with another collation, a view of that name, a MongoDB older than 6.0?)"

// permanentFix returns how to fix a command refused with code, or "" when
// the code is not one retrying cannot get past.
func permanentFix(code int, command string) string {
	switch code {
	case codeUnauthorized:
		return RolesHint
	case codeAuthenticationFailed:
		return "the server refused the credentials: check the user, password and authSource of the connection string"
	case codeUnknownField, codeBadBucketMaxSpan, codeInvalidOptions, codeBadValue, codeFailedToParse, codeTypeMismatch:
		if command == "shardCollection" {
			return shardRefusedFix
		}
		if command == "create" {
			return "the server refused the collection's options: time-series collections need MongoDB 6.0 or later and custom " +
				"bucketing (bucketMaxSpanSeconds, bucketRoundingSeconds) 6.3 or later: configure a granularity instead, or upgrade MongoDB"
		}
		return "the server refused the command's options: check the configuration against this MongoDB version (6.0 or later)"
	case codeIndexOptionsConflict, codeIndexKeySpecsConflict:
		return "an index with the same keys and another name, or the same name and other keys, exists: drop it (db.collection.dropIndex(name)) and restart"
	case codeCannotCreateIndex, codeInvalidIndexSpecificationOption:
		return "the server cannot create the index on this collection: check the collection's indexes and type"
	case codeNotImplemented, codeCommandNotFound, codeCommandNotSupported:
		if command == "create" {
			return "the server has no time-series collections (the FerretDB stand-in?): use MongoDB 6.0 or later; " +
				"for the stand-in only, use the stand-in mode (plain collections, nothing expires)"
		}
		return "the server does not implement this command (a MongoDB older than 6.0, or the FerretDB stand-in)"
	case codeUnknownReplWriteConcern, codeUnsatisfiableWriteConcern:
		return "the replica set cannot satisfy the configured write concern (an unknown tag, or more members than it has): configure majority"
	case codeInvalidNamespace:
		return "the database or collection name is not valid in MongoDB: configure another database"
	case codeCommandNotSupportedOnView:
		return "the namespace is a view, not a collection: drop it or configure another database"
	case codeIllegalOperation:
		if command == "shardCollection" {
			return shardRefusedFix
		}
		return "the server does not allow this operation on this deployment (a secondary, a sharded collection, an arbiter?)"
	}
	return ""
}

// commandError wraps err, returned by command on coll while doing what:
// a *CommandError when the server refused it for a cause retrying cannot
// remove, a plain wrapped error otherwise.
func (s *Store) commandError(coll, command, what string, err error) error {
	if code, fix := refusal(err, command); fix != "" {
		return &CommandError{Namespace: s.namespace(coll), Command: command, Code: code, Fix: fix,
			Err: fmt.Errorf("%s: %w", what, err)}
	}
	return fmt.Errorf("%s: %s on %s: %w", what, command, s.namespace(coll), err)
}

// refusal returns the first code of err's server error that retrying
// cannot get past, and its fix; 0 and "" if it has none. A write error of
// one document is not a refusal of the command (Write reports those per
// document); a write concern error is.
func refusal(err error, command string) (int, string) {
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		if bwe.WriteConcernError != nil {
			if fix := permanentFix(bwe.WriteConcernError.Code, command); fix != "" {
				return bwe.WriteConcernError.Code, fix
			}
		}
		return 0, ""
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		if we.WriteConcernError != nil {
			if fix := permanentFix(we.WriteConcernError.Code, command); fix != "" {
				return we.WriteConcernError.Code, fix
			}
		}
		for _, e := range we.WriteErrors {
			if fix := permanentFix(e.Code, command); fix != "" && e.Code == codeUnauthorized {
				return e.Code, fix
			}
		}
		return 0, ""
	}
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return 0, ""
	}
	for _, code := range se.ErrorCodes() {
		if fix := permanentFix(code, command); fix != "" {
			return code, fix
		}
	}
	return 0, ""
}
