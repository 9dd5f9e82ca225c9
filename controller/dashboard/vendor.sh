#!/usr/bin/env bash
# Re-vendors the dashboard's third-party libraries: installs exactly what package-lock.json pins
# (integrity-checked by `npm ci`) into a temporary directory and copies their minified browser
# builds and license files into vendor/, which is committed, so that building etl-controller needs
# no network and the dashboard fetches nothing from elsewhere at run time.
#
# To upgrade: change the exact versions in package.json, `npm install --package-lock-only`, run
# this script, look at the page (dev/server.mjs, tests/browser/dashboard.mjs), commit vendor/.
# cytoscape-dagre bundles @dagrejs/dagre and @dagrejs/graphlib into its build; those two are
# devDependencies only so that their licenses come along, at the versions its build bundles (the
# script checks that the build names those versions).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$here/package.json" "$here/package-lock.json" "$work/"
npm ci --prefix "$work" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
m="$work/node_modules"
# The licenses are only right if the versions are those cytoscape-dagre's build bundles.
for p in @dagrejs/dagre @dagrejs/graphlib; do
  v=$(node -p 'require(process.argv[1]).version' "$m/$p/package.json")
  if ! grep -q "\"$v\"" "$m/cytoscape-dagre/dist/cytoscape-dagre.min.js"; then
    echo "vendor.sh: cytoscape-dagre's build does not bundle $p $v: pin the version it bundles" >&2
    exit 1
  fi
done

out="$here/vendor"
rm -rf "$out"
mkdir -p "$out"
# file in the package → name served under /assets/
copy() { cp "$m/$1" "$out/$2"; }
copy cytoscape/dist/cytoscape.min.js cytoscape.min.js
copy cytoscape/LICENSE cytoscape.LICENSE.txt
copy cytoscape-dagre/dist/cytoscape-dagre.min.js cytoscape-dagre.min.js
copy cytoscape-dagre/LICENSE cytoscape-dagre.LICENSE.txt
copy @dagrejs/dagre/LICENSE dagre.LICENSE.txt
copy @dagrejs/graphlib/LICENSE graphlib.LICENSE.txt
copy uplot/dist/uPlot.iife.min.js uPlot.iife.min.js
copy uplot/dist/uPlot.min.css uPlot.min.css
copy uplot/LICENSE uPlot.LICENSE.txt

# What was vendored, for the record (and for reviewing an upgrade's diff).
{
  echo "# Vendored by vendor.sh from package-lock.json; do not edit by hand."
  for p in cytoscape cytoscape-dagre @dagrejs/dagre @dagrejs/graphlib uplot; do
    node -e 'const p=require(process.argv[1]); console.log(`${p.name} ${p.version} ${p.license}`)' \
      "$m/$p/package.json"
  done
  echo
  (cd "$out" && sha256sum -- *.js *.css *.txt | grep -v ' VERSIONS.txt$')
} >"$out/VERSIONS.txt"
ls -l "$out" | awk 'NR > 1 { printf "%8d  %s\n", $5, $9 }'
