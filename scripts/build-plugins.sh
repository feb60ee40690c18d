#!/usr/bin/env bash
# Build the plugin SDK, the bundled plugins and the hostile test fixtures for wasm32-wasip2 and
# copy each component to plugins/dist/<name>.wasm. Idempotent: cargo rebuilds only what changed
# and a component is copied only when its bytes differ.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugins="$root/plugins"
target=wasm32-wasip2

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "build-plugins: adding the $target target" >&2
    rustup target add "$target"
fi

# The plugins' own target dir (never the host's CARGO_TARGET_DIR: different target, different
# profile); SLUICE_PLUGINS_TARGET_DIR lets several checkouts share one.
plugin_target="${SLUICE_PLUGINS_TARGET_DIR:-$plugins/target}"
cargo build --quiet --manifest-path "$plugins/Cargo.toml" --target-dir "$plugin_target" --workspace --target "$target" --release

mkdir -p "$plugins/dist"
out="$plugin_target/$target/release"
# Crate names use '-' (add-field); cargo writes the component with '_' (add_field.wasm).
for manifest in "$plugins"/*/Cargo.toml "$plugins"/fixtures/*/Cargo.toml; do
    dir="$(dirname "$manifest")"
    name="$(basename "$dir")"
    [ "$name" = sdk ] && continue
    src="$out/${name//-/_}.wasm"
    if [ ! -f "$src" ]; then
        echo "build-plugins: $src missing after the build" >&2
        exit 1
    fi
    dst="$plugins/dist/$name.wasm"
    if ! cmp -s "$src" "$dst"; then
        cp "$src" "$dst"
        echo "build-plugins: $dst"
    fi
done
