package tablestore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/onboard"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

var (
	_ onboard.Store  = (*Store)(nil)
	_ sweep.Registry = (*Store)(nil)
	_ sweep.History  = (*Store)(nil)
)

// Options are what Open needs besides the settings.
type Options struct {
	// Credential authenticates to config.Registry.Endpoint (the app's
	// managed identity); unused with a connection string.
	Credential azcore.TokenCredential
	// ClientOptions tune the aztables pipeline (tests add policies, set
	// retries or a transport). Nil takes the SDK defaults.
	ClientOptions *aztables.ClientOptions
}

// Store is the tenant registry and the sweep run history. It is safe for
// concurrent use.
type Store struct {
	tenants *aztables.Client
	runs    *aztables.Client
}

// Open connects to the registry and creates its tables when missing. Its
// errors are not prefixed: the caller says what was being opened.
func Open(ctx context.Context, reg config.Registry, opts Options) (*Store, error) {
	if reg.Table == "" || reg.RunsTable == "" {
		return nil, errors.New("table names are required")
	}
	svc, err := serviceClient(reg, opts)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{reg.Table, reg.RunsTable} {
		if _, err := svc.CreateTable(ctx, name, nil); err != nil && !hasCode(err, aztables.TableAlreadyExists) {
			return nil, fmt.Errorf("create table %s: %w", name, err)
		}
	}
	return &Store{tenants: svc.NewClient(reg.Table), runs: svc.NewClient(reg.RunsTable)}, nil
}

func serviceClient(reg config.Registry, opts Options) (*aztables.ServiceClient, error) {
	switch {
	case reg.Endpoint != "" && reg.Connection != "":
		return nil, errors.New("set either a connection string or an endpoint, not both")
	case reg.Endpoint != "":
		if opts.Credential == nil {
			return nil, errors.New("a credential is required with an endpoint")
		}
		return aztables.NewServiceClient(strings.TrimRight(reg.Endpoint, "/"), opts.Credential, opts.ClientOptions)
	case reg.Connection != "":
		c, err := parseConnectionString(reg.Connection)
		if err != nil {
			return nil, err
		}
		if c.sas != "" {
			return aztables.NewServiceClientWithNoCredential(c.endpoint+"/?"+c.sas, opts.ClientOptions)
		}
		cred, err := aztables.NewSharedKeyCredential(c.account, c.key)
		if err != nil {
			// The SDK's message is about base64, never the key itself.
			return nil, fmt.Errorf("connection string: AccountKey: %w", err)
		}
		return aztables.NewServiceClientWithSharedKey(c.endpoint, cred, opts.ClientOptions)
	default:
		return nil, errors.New("neither a connection string nor an endpoint is set")
	}
}

// hasCode reports whether err is a service error with the given code.
func hasCode(err error, code aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == string(code)
}

func hasStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

func isNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }
