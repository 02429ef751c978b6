package tablestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
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
	// names of the two tables, for errors (aztables.Client does not say).
	names   map[*aztables.Client]string
	timeout time.Duration
}

// DefaultTimeout bounds each registry call when config.Registry.Timeout is
// zero.
const DefaultTimeout = 10 * time.Second

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
	s := &Store{tenants: svc.NewClient(reg.Table), runs: svc.NewClient(reg.RunsTable), timeout: cmp.Or(reg.Timeout, DefaultTimeout)}
	s.names = map[*aztables.Client]string{s.tenants: reg.Table, s.runs: reg.RunsTable}
	for _, c := range []*aztables.Client{s.tenants, s.runs} {
		if err := s.createTable(ctx, c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// createTable creates c's table unless it exists.
func (s *Store) createTable(ctx context.Context, c *aztables.Client) error {
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := c.CreateTable(ctx, nil)
		if hasCode(err, aztables.TableAlreadyExists) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", s.names[c], err)
	}
	return nil
}

// call runs one registry request under its own deadline, so that storage
// that accepts connections and never answers cannot hold a caller forever.
// What is worth retrying (the deadline, a network error, a 5xx, 408 or 429
// after the SDK's own retries) is marked tenant.ErrUnavailable; an error
// caused by the caller's own context is returned as is.
func (s *Store) call(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := fn(cctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != http.StatusRequestTimeout && re.StatusCode != http.StatusTooManyRequests {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s: %w", s.timeout, err)
	}
	return fmt.Errorf("%w: %w", tenant.ErrUnavailable, err)
}

// eachPage lists c's entities with opts, each page under its own deadline
// (call), and hands fn each page's entity bodies. A missing table (dropped:
// the next write recreates it) lists nothing.
func (s *Store) eachPage(ctx context.Context, c *aztables.Client, opts *aztables.ListEntitiesOptions, fn func(entities [][]byte) error) error {
	pager := c.NewListEntitiesPager(opts)
	for pager.More() {
		var resp aztables.ListEntitiesResponse
		err := s.call(ctx, func(ctx context.Context) (err error) {
			resp, err = pager.NextPage(ctx)
			return err
		})
		if hasCode(err, aztables.TableNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(resp.Entities); err != nil {
			return err
		}
	}
	return nil
}

// write is call for a write to c's table: when the table is missing (it was
// dropped while the app ran), it is created again and the write retried
// once, rather than failing every write until a restart.
func (s *Store) write(ctx context.Context, c *aztables.Client, fn func(ctx context.Context) error) error {
	err := s.call(ctx, fn)
	if !hasCode(err, aztables.TableNotFound) {
		return err
	}
	if err := s.createTable(ctx, c); err != nil {
		return fmt.Errorf("recreate dropped table: %w", err)
	}
	return s.call(ctx, fn)
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
