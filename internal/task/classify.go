package task

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	abs "github.com/microsoft/kiota-abstractions-go"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// classify turns what a task's Run returned into an error holding an
// *outcome.Error, as the built-in reads classify theirs: an *outcome.Error
// keeps its code, a deadline is a timeout, and an Azure SDK or Graph error
// is classified by the service that answered and its status. Anything
// else is the task's own failure (internal_error), never blamed on the
// customer. Detail texts are built here from statuses and codes only: an
// SDK error's text carries request URLs and response bodies.
//
// graphGranted: the task's Graph token held every permission the task
// declares. Graph's 403 Authorization_RequestDenied to it is then not a
// missing consent: the request needs a permission the task does not
// declare, the app's bug, and its customers have nothing to grant.
// (Graph's other 403s, a licence or a policy of the tenant, say so with
// other codes.)
func classify(ctx context.Context, cl cloud.Cloud, err error, graphGranted bool) error {
	var re *azcore.ResponseError
	isResp := errors.As(err, &re)
	var ae abs.ApiErrorable
	isGraph := !isResp && errors.As(err, &ae) && ae.GetStatusCode() != 0
	if settled, ok := outcome.Settled(ctx, err, isResp || isGraph, "the task did not finish within the tenant's time budget"); ok {
		return settled
	}
	switch {
	case isGraph && graphGranted && ae.GetStatusCode() == http.StatusForbidden && graph.ErrorCode(err) == "Authorization_RequestDenied":
		return outcome.New(outcome.InternalError, "Microsoft Graph refused a request of the task although the tenant granted every permission the task declares: the task needs one it does not declare in About().Graph", err)
	case isGraph:
		return byStatus(ctx, err, "Microsoft Graph", ae.GetStatusCode(), serviceGraph, "")
	case isResp:
		host, path := "", ""
		if re.RawResponse != nil && re.RawResponse.Request != nil {
			host, path = strings.ToLower(re.RawResponse.Request.URL.Hostname()), re.RawResponse.Request.URL.Path
			// The request's context counted its tries (outcome.AttemptsPolicy).
			ctx = re.RawResponse.Request.Context()
		}
		switch {
		case cl.IsVaultHost(host):
			return tenant.About(byStatus(ctx, err, "Key Vault", re.StatusCode, serviceVault, path), tenant.Subject{VaultURL: "https://" + host + "/"})
		case strings.EqualFold(host, cl.GraphHost()):
			return byStatus(ctx, err, "Microsoft Graph", re.StatusCode, serviceGraph, path)
		}
		return tenant.About(byStatus(ctx, err, orHost(host), re.StatusCode, serviceOther, path), tenant.Subject{Resource: host})
	case outcome.Unreachable(err) || isNetwork(err):
		return outcome.New(outcome.UpstreamError, "a service the task uses could not be reached", err)
	}
	return outcome.New(outcome.InternalError, "the task failed with an error of its own (logged with the tenant id)", err)
}

type service int

const (
	serviceGraph service = iota
	serviceVault
	serviceOther
)

// byStatus classifies a service's error answer.
func byStatus(ctx context.Context, err error, who string, status int, svc service, path string) error {
	switch {
	case status == http.StatusForbidden:
		switch svc {
		case serviceGraph:
			return outcome.New(outcome.GraphConsentMissing, "Microsoft Graph refused the app: admin consent for its application permissions is missing", err)
		case serviceVault:
			return outcome.New(outcome.KeyVaultAccessDenied, "Key Vault refused the app: it has no role on the vault for what the task does", err)
		}
		return outcome.New(outcome.AccessDenied, who+" refused the app (HTTP 403): it has no role there", err)
	case status == http.StatusNotFound:
		if svc == serviceVault && strings.HasPrefix(path, "/secrets/") {
			return outcome.New(outcome.SecretNotFound, "the vault has no such secret (or it is deleted)", err)
		}
		return outcome.New(outcome.ResourceNotFound, who+" answered HTTP 404: what the task reads does not exist", err)
	case status == http.StatusTooManyRequests:
		return outcome.New(outcome.Throttled, who+" throttled the app past its retry budget", err)
	case status == http.StatusUnauthorized:
		return outcome.New(outcome.UpstreamError, who+" rejected the app's token", err)
	case status >= 500:
		return outcome.New(outcome.UpstreamError, outcome.Answered(ctx, who, status), err)
	}
	return outcome.New(outcome.UpstreamError, fmt.Sprintf("%s answered HTTP %d", who, status), err)
}

func orHost(host string) string {
	if host == "" {
		return "an Azure service"
	}
	return host
}

// isNetwork reports an error of the HTTP client or the network under it:
// no answer came.
func isNetwork(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}
