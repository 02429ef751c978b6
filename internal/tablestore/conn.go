package tablestore

import (
	"errors"

	"github.com/tenantsweep/tenantsweep/internal/storageconn"
)

// connection is what the store needs from a parsed connection string.
type connection struct {
	// endpoint is the table service URL, without a SAS.
	endpoint string
	// account and key are set for shared-key auth; sas otherwise.
	account string
	key     string
	sas     string
}

// CheckConnectionString reports whether cs is a connection string the store
// can use, without connecting: start-up calls it so that a malformed one
// stops the process instead of failing every request. Like Open's, its
// errors never echo a value.
func CheckConnectionString(cs string) error {
	_, err := parseConnectionString(cs)
	return err
}

// parseConnectionString is storageconn.Parse for a string that must reach a
// table service.
func parseConnectionString(cs string) (connection, error) {
	c, err := storageconn.Parse(cs)
	if err != nil {
		return connection{}, err
	}
	if c.TableEndpoint == "" {
		return connection{}, errors.New("connection string has neither TableEndpoint nor AccountName")
	}
	return connection{endpoint: c.TableEndpoint, account: c.Account, key: c.Key, sas: c.SAS}, nil
}
