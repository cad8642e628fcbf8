package icebergmeds

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"gopkg.in/yaml.v3"
)

// Scheme is the scheme of a dataset reference: iceberg:CATALOG/NAMESPACE.
const Scheme = "iceberg"

// ConfigEnv names the catalog config file when no flag does; DefaultConfigFile (below the
// user's config folder) is read when neither does and it exists.
const (
	ConfigEnv         = "MEDSEQ_ICEBERG_CONFIG"
	DefaultConfigFile = "medseq/iceberg.yaml"
	// EnvPrefix starts environment variables that set or override one key of one catalog:
	// MEDSEQ_CATALOG__<NAME>__<KEY>, KEY upper-cased with '-' and '.' written '_' (so
	// MEDSEQ_CATALOG__POLARIS__OAUTH2_SERVER_URI sets oauth2-server-uri of catalog polaris).
	EnvPrefix = "MEDSEQ_CATALOG__"
)

// Catalog types.
const (
	TypeREST = "rest"
	TypeSQL  = "sql"
)

// Keys of a catalog's configuration. Keys with a dot (s3.endpoint, s3.region,
// client.region, ...) are passed to the catalog and its file IO as properties.
const (
	KeyType             = "type"
	KeyURI              = "uri"
	KeyWarehouse        = "warehouse"
	KeyCredential       = "credential"
	KeyScope            = "scope"
	KeyOAuth2ServerURI  = "oauth2-server-uri"
	KeyAccessDelegation = "access-delegation"
	KeyToken            = "token"
)

var knownKeys = []string{KeyType, KeyURI, KeyWarehouse, KeyCredential, KeyScope, KeyOAuth2ServerURI,
	KeyAccessDelegation, KeyToken}

// ErrConfig is wrapped by every error about the catalog configuration.
var ErrConfig = errors.New("iceberg catalog config")

// Config is the catalog configuration: catalogs by name, each a map of keys to values.
//
//	catalogs:
//	  polaris:
//	    type: rest
//	    uri: https://polaris.example.org/api/catalog
//	    warehouse: clinical
//	    credential: env:POLARIS_CREDENTIAL   # client-id:secret, from env:VAR or file:PATH
//	    scope: PRINCIPAL_ROLE:ALL
//	  local:
//	    type: sql
//	    uri: /data/iceberg/catalog.db        # SQLite file
//	    warehouse: file:///data/iceberg/warehouse
type Config struct {
	Catalogs map[string]map[string]string `yaml:"catalogs"`
	// Path is the file the config was read from ("" when none was).
	Path string `yaml:"-"`
}

// LoadConfig reads the catalog config file at path; with path "" it reads $MEDSEQ_ICEBERG_CONFIG,
// else the default file when it exists (else starts empty). Environment variables
// MEDSEQ_CATALOG__<NAME>__<KEY> then set or override keys.
func LoadConfig(path string) (*Config, error) {
	explicit := path != ""
	if !explicit {
		if path = os.Getenv(ConfigEnv); path != "" {
			explicit = true
		} else if dir, err := os.UserConfigDir(); err == nil {
			path = filepath.Join(dir, DefaultConfigFile)
		}
	}
	cfg := &Config{Catalogs: map[string]map[string]string{}}
	if path != "" {
		buf, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := decodeConfig(buf, cfg); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
			}
			cfg.Path = path
		case explicit || !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if err := cfg.applyEnv(os.Environ()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeConfig decodes a config file strictly (JSON is YAML too).
func decodeConfig(buf []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return err
	}
	if cfg.Catalogs == nil {
		cfg.Catalogs = map[string]map[string]string{}
	}
	for name, c := range cfg.Catalogs {
		if c == nil {
			cfg.Catalogs[name] = map[string]string{}
		}
		for k := range c {
			if !strings.Contains(k, ".") && !isKnownKey(k) {
				return fmt.Errorf("catalog %s: unknown key %q (want one of %s, or a property with a dot such as "+
					"s3.endpoint)", name, k, strings.Join(knownKeys, ", "))
			}
		}
	}
	return nil
}

func isKnownKey(k string) bool {
	for _, x := range knownKeys {
		if k == x {
			return true
		}
	}
	return false
}

// applyEnv applies MEDSEQ_CATALOG__<NAME>__<KEY>=value entries of environ.
func (c *Config) applyEnv(environ []string) error {
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(k, EnvPrefix)
		if !ok {
			continue
		}
		name, key, ok := strings.Cut(rest, "__")
		if !ok || name == "" || key == "" {
			return fmt.Errorf("%w: environment variable %s: want %sNAME__KEY", ErrConfig, k, EnvPrefix)
		}
		name = strings.ToLower(name)
		key = envKey(key)
		if c.Catalogs[name] == nil {
			c.Catalogs[name] = map[string]string{}
		}
		c.Catalogs[name][key] = v
	}
	return nil
}

// envKey is the config key an environment variable's KEY part names: a known key whose
// dashes are written as underscores, else a property whose dots are (S3_ENDPOINT: s3.endpoint).
func envKey(k string) string {
	k = strings.ToLower(k)
	for _, x := range knownKeys {
		if strings.ReplaceAll(x, "-", "_") == k {
			return x
		}
	}
	return strings.ReplaceAll(k, "_", ".")
}

// Ref is a parsed dataset reference iceberg:CATALOG/NAMESPACE (NAMESPACE may be dotted: a.b).
type Ref struct {
	Catalog   string
	Namespace table.Identifier
}

func (r Ref) String() string {
	return Scheme + ":" + r.Catalog + "/" + strings.Join(r.Namespace, ".")
}

// ParseRef parses iceberg:CATALOG/NAMESPACE, or CATALOG/NAMESPACE without the scheme.
func ParseRef(s string) (Ref, error) {
	body := strings.TrimPrefix(s, Scheme+":")
	cat, ns, ok := strings.Cut(body, "/")
	if !ok || cat == "" || ns == "" || strings.Contains(ns, "/") {
		return Ref{}, fmt.Errorf("dataset reference %q: want %s:CATALOG/NAMESPACE", s, Scheme)
	}
	parts := strings.Split(ns, ".")
	for _, p := range parts {
		if p == "" {
			return Ref{}, fmt.Errorf("dataset reference %q: empty namespace level in %q", s, ns)
		}
	}
	return Ref{Catalog: cat, Namespace: parts}, nil
}

// names lists the configured catalogs, for messages.
func (c *Config) names() string {
	var out []string
	for n := range c.Catalogs {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func (c *Config) where() string {
	if c.Path == "" {
		return fmt.Sprintf("no config file ($%s or %s below the user config folder) and no %s* variables",
			ConfigEnv, DefaultConfigFile, EnvPrefix)
	}
	return c.Path
}

// OpenCatalog opens the catalog named name. The caller closes it with CloseCatalog.
func (c *Config) OpenCatalog(ctx context.Context, name string) (catalog.Catalog, error) {
	props, ok := c.Catalogs[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown catalog %q (configured: %s; from %s)", ErrConfig, name, c.names(), c.where())
	}
	if props[KeyURI] == "" {
		return nil, fmt.Errorf("%w: catalog %s: no uri", ErrConfig, name)
	}
	switch t := props[KeyType]; t {
	case TypeREST, "":
		return openREST(ctx, name, props)
	case TypeSQL:
		return openSQL(name, props)
	default:
		return nil, fmt.Errorf("%w: catalog %s: type %q: want %s or %s", ErrConfig, name, t, TypeREST, TypeSQL)
	}
}

// CloseCatalog releases what a catalog holds (a SQL catalog's database).
func CloseCatalog(cat catalog.Catalog) error {
	if c, ok := cat.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// properties are the keys with a dot: catalog and file IO properties.
func properties(props map[string]string) iceberg.Properties {
	out := iceberg.Properties{}
	for k, v := range props {
		if strings.Contains(k, ".") {
			out[k] = v
		}
	}
	return out
}

// openREST opens a REST catalog (Apache Polaris, Nessie, Unity, ...).
func openREST(ctx context.Context, name string, props map[string]string) (catalog.Catalog, error) {
	var opts []rest.Option
	if w := props[KeyWarehouse]; w != "" {
		opts = append(opts, rest.WithWarehouseLocation(w))
	}
	if props[KeyCredential] != "" {
		cred, err := secret(name, KeyCredential, props[KeyCredential])
		if err != nil {
			return nil, err
		}
		opts = append(opts, rest.WithCredential(cred))
	}
	if props[KeyToken] != "" {
		tok, err := secret(name, KeyToken, props[KeyToken])
		if err != nil {
			return nil, err
		}
		opts = append(opts, rest.WithOAuthToken(tok))
	}
	if s := props[KeyScope]; s != "" {
		opts = append(opts, rest.WithScope(s))
	}
	if a := props[KeyOAuth2ServerURI]; a != "" {
		u, err := url.Parse(a)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("%w: catalog %s: %s %q: not an absolute URL", ErrConfig, name, KeyOAuth2ServerURI, a)
		}
		opts = append(opts, rest.WithAuthURI(u))
	}
	switch d := props[KeyAccessDelegation]; d {
	case "none":
	case "":
		opts = append(opts, rest.WithHeaders(map[string]string{accessDelegationHeader: "vended-credentials"}))
	default:
		opts = append(opts, rest.WithHeaders(map[string]string{accessDelegationHeader: d}))
	}
	if p := properties(props); len(p) > 0 {
		opts = append(opts, rest.WithAdditionalProps(p))
	}
	cat, err := rest.NewCatalog(ctx, name, props[KeyURI], opts...)
	if err != nil {
		return nil, fmt.Errorf("open catalog %s (REST, %s): %w", name, props[KeyURI], err)
	}
	return cat, nil
}

// accessDelegationHeader asks a REST catalog to vend storage credentials with a table.
const accessDelegationHeader = "X-Iceberg-Access-Delegation"

// secret resolves a credential given as env:VAR or file:PATH, so that secrets stay out of
// config files and command lines.
func secret(catalogName, key, v string) (string, error) {
	kind, arg, _ := strings.Cut(v, ":")
	switch kind {
	case "env":
		s, ok := os.LookupEnv(arg)
		if !ok || s == "" {
			return "", fmt.Errorf("%w: catalog %s: %s: environment variable %s is not set", ErrConfig, catalogName, key, arg)
		}
		return s, nil
	case "file":
		buf, err := os.ReadFile(arg)
		if err != nil {
			return "", fmt.Errorf("%w: catalog %s: %s: %v", ErrConfig, catalogName, key, err)
		}
		s := strings.TrimSpace(string(buf))
		if s == "" {
			return "", fmt.Errorf("%w: catalog %s: %s: %s is empty", ErrConfig, catalogName, key, arg)
		}
		return s, nil
	}
	return "", fmt.Errorf("%w: catalog %s: %s must be env:VARIABLE or file:PATH (the secret stays out of the "+
		"config file)", ErrConfig, catalogName, key)
}

// openSQL opens a SQL catalog on a SQLite file (uri: a path or a file: URI).
func openSQL(name string, props map[string]string) (catalog.Catalog, error) {
	uri := props[KeyURI]
	dsn := uri
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	if !strings.Contains(dsn, "_pragma=busy_timeout") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open catalog %s (SQLite %s): %w", name, uri, err)
	}
	p := properties(props)
	if w := props[KeyWarehouse]; w != "" {
		p["warehouse"] = w
	}
	cat, err := sqlcat.NewCatalog(name, db, sqlcat.SQLite, p)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog %s (SQLite %s): %w", name, uri, err)
	}
	return &sqlCatalog{Catalog: cat, db: db}, nil
}

// sqlCatalog is a SQL catalog that owns its database handle.
type sqlCatalog struct {
	*sqlcat.Catalog
	db *sql.DB
}

func (c *sqlCatalog) Close() error {
	return errors.Join(c.Catalog.Close(), c.db.Close())
}
