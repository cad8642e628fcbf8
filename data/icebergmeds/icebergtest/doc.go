// Package icebergtest is for tests: an in-process Apache Iceberg REST catalog server (the
// protocol Apache Polaris speaks) that serves the tables of another catalog, typically a SQL
// catalog on SQLite, so that tests exercise medseq's REST path against real table metadata
// and Parquet files without a network service.
//
// The server offers what a Polaris deployment offers a client such as medseq:
//
//   - GET /v1/config (with the prefix override, and the endpoints advertised when asked);
//   - an OAuth2 client-credentials token endpoint whose tokens expire, so clients must renew
//     them; every other request needs a valid bearer token;
//   - namespaces: list, load, create, drop;
//   - tables: list, load (with storage config vended when the request carries
//     X-Iceberg-Access-Delegation: vended-credentials), create, commit (requirements and
//     updates) and drop;
//   - POST /v1/{prefix}/transactions/commit, the multi-table commit, all or nothing: writes
//     are serialized, every table's requirements are checked and its updates tried on its
//     metadata before any table is written, and should the backing catalog still fail on a
//     later table, those written before it are undone (a table the commit created is
//     dropped; one that existed gets its main branch back at the snapshot it had: data is
//     restored exactly, while schema or property changes of the undone commit stay in its
//     metadata, as catalog.Catalog offers no way to put an earlier metadata file back).
//
// Writes are delegated to the backing catalog. It records every request (method, path,
// delegation header, warehouse, whether it carried a valid token) for tests to assert on, and
// can be told to refuse commits to chosen tables (403, as Polaris refuses a principal without
// TABLE_WRITE_DATA) to test what a failed commit leaves behind.
//
// Not offered: staged table creation (stage-create), rename, register, views, server-side
// scan planning, and the HEAD existence endpoints unless advertised (clients then use GET).
//
// Like its parent package it builds without a tag (medseq links the parent only with
// -tags iceberg); nothing but tests should import it.
package icebergtest
