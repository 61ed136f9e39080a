#!/usr/bin/env bash
# Refresh GraphiQL's vendored assets in src/deploybot/web/static/vendor/ from npm, at the
# pinned versions, and check them against the SHA-384 pins Strawberry's page uses. Not part
# of set-up: the files are shipped in the package so deploybot needs no network at run time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/src/deploybot/web/static/vendor"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
for p in react@18.2.0 react-dom@18.2.0 graphiql@3.8.3 @graphiql/plugin-explorer@1.0.2; do
  npm pack -q "$p" >/dev/null
done
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
cp react-18.2.0/package/umd/react.production.min.js "$OUT/"
cp react-dom-18.2.0/package/umd/react-dom.production.min.js "$OUT/"
cp graphiql-3.8.3/package/graphiql.min.js graphiql-3.8.3/package/graphiql.min.css "$OUT/"
cp graphiql-plugin-explorer-1.0.2/package/dist/index.umd.js "$OUT/graphiql-plugin-explorer.umd.js"
cp graphiql-plugin-explorer-1.0.2/package/dist/style.css "$OUT/graphiql-plugin-explorer.css"
cd "$OUT" && sha384sum -c SHA384SUMS
