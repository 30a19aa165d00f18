#!/bin/sh
# Installs the Plum appliance @VERSION@ from plum-install-@VERSION@.tar, with no network:
#
#   tar -xf plum-install-@VERSION@.tar install.sh
#   sudo sh install.sh --fingerprint SHA256:…      (the vendor key's fingerprint, from the release notes)
#
# Before anything leaves a private temporary folder it checks that the bundle is signed by the key with that
# fingerprint, that every member is listed in the signed SHA256SUMS with its checksum, and that nothing else is
# in it. Then it runs `plumctl install` from the bundle (any further options are passed on to it).
# The same check by hand: extract vendor-public-key.pem, SHA256SUMS and SHA256SUMS.sig, then
#   openssl pkey -pubin -in vendor-public-key.pem -outform DER | openssl dgst -sha256 -binary | openssl base64 -A
#   openssl pkeyutl -verify -pubin -inkey vendor-public-key.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig
#   sha256sum -c SHA256SUMS          (SHA256SUMS lists this script too)
set -eu

VERSION='@VERSION@'
here=$(cd "$(dirname "$0")" && pwd)
bundle="$here/plum-install-$VERSION.tar"
fingerprint=''

die() {
  echo "install.sh: $1" >&2
  [ $# -gt 1 ] && echo "  hint: $2" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --fingerprint) [ $# -ge 2 ] || die "--fingerprint needs a value"; fingerprint=$2; shift 2 ;;
    --fingerprint=*) fingerprint=${1#--fingerprint=}; shift ;;
    --bundle) [ $# -ge 2 ] || die "--bundle needs a value"; bundle=$2; shift 2 ;;
    --bundle=*) bundle=${1#--bundle=}; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done

[ -n "$fingerprint" ] || die "give the vendor key's fingerprint: sh install.sh --fingerprint SHA256:…" "it is printed in the release notes of $VERSION; never take it from the bundle itself"
[ "$(id -u)" -eq 0 ] || die "run it as root" "sudo sh install.sh --fingerprint $fingerprint"
[ -f "$bundle" ] || die "there is no $bundle" "keep install.sh beside plum-install-$VERSION.tar, or name it with --bundle FILE"
for tool in tar openssl sha256sum awk sort; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed" "install it from the Debian 12 media (apt-get install $tool); openssl 3 checks the signature"
done

work=$(mktemp -d /var/tmp/plum-install.XXXXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
chmod 700 "$work"
# Every check and the unpacking read one private copy: a file others can write could change between them.
given=$bundle
cp "$given" "$work/bundle.tar" || die "cannot copy $given into $work" "free some space in /var/tmp"
bundle="$work/bundle.tar"

# 1. Only regular files with plain relative names: no links, devices, folders, absolute or ../ paths.
tar -tvf "$bundle" >"$work/listing" 2>"$work/tar.err" || die "$given is not a readable tar file: $(tail -n 1 "$work/tar.err")" "copy it again; its checksum is in the release notes"
if awk 'substr($1, 1, 1) != "-" { bad = 1 } END { exit bad ? 0 : 1 }' "$work/listing"; then
  die "$given holds something other than plain files: nothing was installed" "this is not a bundle the vendor built; get it again from the vendor"
fi
tar -tf "$bundle" | LC_ALL=C sort >"$work/members"
if grep -Eq '^/|(^|/)\.\.(/|$)' "$work/members"; then
  die "$given names files outside its own folder: nothing was installed" "this is not a bundle the vendor built"
fi

# 2. The vendor key inside must be the one the admin names.
tar -xOf "$bundle" vendor-public-key.pem >"$work/vendor-public-key.pem" 2>/dev/null || die "$given has no vendor-public-key.pem: nothing was installed"
found="SHA256:$(openssl pkey -pubin -in "$work/vendor-public-key.pem" -outform DER 2>/dev/null | openssl dgst -sha256 -binary | openssl base64 -A | tr -d '=')"
[ "$found" = "$fingerprint" ] || die "the bundle is signed with the key $found, not $fingerprint: nothing was installed" "check the fingerprint in the vendor's release notes; a bundle signed by another key is not the vendor's"

# 3. Its signature over SHA256SUMS.
tar -xOf "$bundle" SHA256SUMS >"$work/SHA256SUMS" 2>/dev/null || die "$given has no SHA256SUMS: nothing was installed"
tar -xOf "$bundle" SHA256SUMS.sig >"$work/SHA256SUMS.sig" 2>/dev/null || die "$given has no SHA256SUMS.sig: nothing was installed"
openssl pkeyutl -verify -pubin -inkey "$work/vendor-public-key.pem" -rawin -in "$work/SHA256SUMS" -sigfile "$work/SHA256SUMS.sig" >/dev/null 2>&1 ||
  die "the signature of SHA256SUMS does not verify: nothing was installed" "the bundle was changed after the vendor signed it; get it again"

# 4. Every other member is listed, with the checksum its bytes have (read in one pass, nothing written).
awk '{ print $2 }' "$work/SHA256SUMS" | LC_ALL=C sort >"$work/listed"
grep -Ev '^(vendor-public-key\.pem|SHA256SUMS|SHA256SUMS\.sig)$' "$work/members" >"$work/unsigned" || true
cmp -s "$work/listed" "$work/unsigned" || die "the bundle's members are not the ones SHA256SUMS lists: nothing was installed" "the bundle was changed after the vendor signed it; get it again"
tar -xf "$bundle" --exclude=vendor-public-key.pem --exclude=SHA256SUMS --exclude=SHA256SUMS.sig \
  --to-command='printf "%s  %s\n" "$(sha256sum | cut -d" " -f1)" "$TAR_FILENAME"' | LC_ALL=C sort -k2 >"$work/measured"
LC_ALL=C sort -k2 "$work/SHA256SUMS" | cmp -s - "$work/measured" || die "a member's checksum is not the signed one: nothing was installed" "the bundle was changed after the vendor signed it; get it again"

# 5. Trusted now: unpack into the private folder and hand over to plumctl install.
mkdir "$work/bundle" "$work/release" "$work/release/app"
tar -xf "$bundle" -C "$work/bundle" --no-same-owner
tar -xzf "$work/bundle/node.tar.gz" -C "$work/release" --no-same-owner
tar -xzpf "$work/bundle/app.tgz" -C "$work/release/app" --no-same-owner
echo "install.sh: plum-install-$VERSION.tar is signed by $fingerprint and intact"
status=0
"$work/release/node/bin/node" "$work/release/app/bin/plumctl.js" install --from "$work" "$@" || status=$?
exit "$status"
