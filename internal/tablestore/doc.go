// Package tablestore keeps the tenant registry and the sweep run history in
// Azure Table Storage (Azurite in tests and local mode).
//
// # Keys
//
// A tenant's PartitionKey is the first two hex characters of its lower-case
// GUID and its RowKey the GUID itself. Tenant GUIDs are random, so the 256
// partitions fill evenly: at 100,000 tenants about 390 rows each. That is
// what the design is sized for:
//
//   - Get is a point read: 1 request.
//   - Mutate is a read and a conditional write: 2 requests, plus 2 for each
//     retry after losing to a concurrent writer.
//   - A full scan (List page by page, or EachActive) reads pages of 1,000:
//     about 100 requests at 100,000 tenants, a few more when the service
//     ends a page early at a partition-server boundary or after its 5-second
//     limit. At roughly 1 KB per record that is about 100 MB.
//   - Rows list in PartitionKey then RowKey order. The sweep starts tenants
//     in that order (its longest-unswept-first sort keeps it from one sweep
//     to the next), so results finishing together mostly belong to one or two
//     partitions, and MutateMany groups the changes of each call by partition
//     into batch transactions of up to 100 rows. Writing back a sweep of 100,000
//     tenants takes 100,000 conditional updates one by one (200,000 requests
//     through Mutate, which reads first), but about 1,000 to 2,000 batch
//     requests when results arrive in key order: at best 256 partitions × 4
//     batches of ≤100 = 1,024. In random order a flush of 100 results spans
//     about 83 of the 256 partitions and batching saves little. A batch that
//     fails (one stale row fails the whole transaction) is redone change by
//     change: 1 request per change, plus 2 per stale change.
//
// # Properties
//
// Scalar fields are typed properties (Status, DisplayName, Graph,
// ConsecutiveFailures); Status is a property of its own so that EachActive
// filters on the server. Lists and objects (KeyVaults, Verification,
// LastSweep) are JSON strings. Times are RFC 3339 strings with nine
// fractional digits in UTC, so they sort as text and keep the instant to the
// nanosecond (Edm.DateTime would keep only 100 ns and rejects dates before
// 1601, such as the zero time); zero or nil times are left out. A record read
// back equals the one written except for time zones: top-level times come
// back in UTC and times inside the JSON properties with their UTC offset.
//
// Table Storage limits a string property to 64 KiB counted in UTF-16 (2
// bytes per code unit) and an entity to 1 MiB. Writes that would exceed
// either are refused with tenant.ErrTooLarge before anything is sent, so a
// write is never partial.
//
// # Run history
//
// Runs share the PartitionKey "run"; the RowKey is the StartedAt time in
// nanoseconds subtracted from the largest int64, zero-padded to 19 digits,
// then "-" and the run ID, so the newest run lists first.
package tablestore
