#!/usr/bin/env bash
# test.sh — the project's test command: prepares the machine (scripts/setup-debian.sh: Debian
# packages, npm ci) and runs `npm test` (build, then scripts/run-tests.mjs, which starts and stops the
# two test Swift regions itself). Arguments select test areas and are passed through:
#   sudo bash scripts/test.sh                 # everything
#   sudo bash scripts/test.sh unit integration
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# npm test builds anyway: no need for setup-debian.sh to build as well
SWIFTFS_SETUP_SKIP_BUILD=1 bash scripts/setup-debian.sh

echo "test: npm test $*"
# --silent: no npm banners or npm's own warnings after the test runner's closing summary
exec npm test --silent -- "$@"
