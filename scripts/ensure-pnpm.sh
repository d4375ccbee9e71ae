# Sourced by scripts/test and scripts/dev: puts pnpm, at the version package.json pins, on
# PATH. Not through corepack: the corepack bundled with Node 20 cannot verify the signatures of
# current pnpm releases ("No compatible signature").
pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
tools="${WEIR_CI_TOOLS:-${TMPDIR:-/tmp}/weir-ci-tools}"
if [ ! -x "$tools/bin/pnpm" ] || [ "$("$tools/bin/pnpm" --version)" != "$pnpm_version" ]; then
  npm install --global --prefix "$tools" --no-audit --no-fund "pnpm@$pnpm_version"
fi
export PATH="$tools/bin:$PATH"
