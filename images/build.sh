#!/usr/bin/env bash
# Builds the OCI image archives that rkube's tests and the tutorial use, offline, from Debian
# packages of this machine's apt sources:
#
#   nginx.tar             docker.io/library/nginx:latest      Cmd ["nginx","-g","daemon off;"]
#   busybox.tar           docker.io/library/busybox:latest    Cmd ["sh"]
#   curl.tar              docker.io/curlimages/curl:latest    Entrypoint ["/entrypoint.sh"] Cmd ["curl"]
#   busyboxplus-curl.tar  docker.io/radial/busyboxplus:curl   Cmd ["/bin/sh"]
#
# Usage: images/build.sh [OUT_DIR]   (default: target/images in the repository)
#        RKUBE_IMAGES_FORCE=1 rebuilds even when the stamp says the archives are current.
#        RKUBE_IMAGE_CACHE=DIR keeps the downloaded .debs there (default: target/image-debs).
#
# How it works, and why this way:
# - Nothing is installed on the host. Installing nginx would start a service on port 80 and
#   pull in maintainer scripts; instead `apt-get download` fetches the .debs (the host's apt
#   cache is used when it already has the right version) and `dpkg-deb -x` unpacks them into a
#   throwaway sysroot. `apt-get update` runs only when apt cannot find or fetch a package.
# - Which .debs: ocitool.py follows the Depends of nginx, busybox-static, coreutils and curl
#   through library packages only (lib*, zlib1g), at apt's candidate versions, so every shared
#   object comes from the same Debian release as the binaries rather than from whatever the
#   host has installed.
# - Which files: only what the binaries load. The sysroot's own dynamic loader lists each
#   binary's libraries (`ld.so --inhibit-cache --library-path SYSROOT --list`), and a library
#   found outside the sysroot or not at all stops the build, so a missing dependency cannot
#   slip in from the host.
# - Every image starts from the same base: static busybox with relative links for all of its
#   applets (so `sh -c` and the usual tools work), coreutils' printenv (Debian's busybox lacks
#   that applet, and the tutorial runs `kubectl exec POD -- printenv`), /etc/passwd and
#   /etc/group with root and nobody, /etc/nsswitch.conf, and /tmp with mode 1777.
# - ocitool.py writes each archive: one gzip layer with sorted entries, owner 0:0 and a fixed
#   mtime (SOURCE_DATE_EPOCH, default 0), and canonical JSON, so a rebuild from the same
#   packages gives the same bytes and digests. The archive is an OCI image layout (oci-layout,
#   index.json with the org.opencontainers.image.ref.name annotation, blobs/sha256) plus a
#   docker-load manifest.json.
# - Fast when up to date: a stamp hashes these scripts and files, the apt package lists'
#   sizes and times, and the epoch; when it matches and every archive exists the script exits
#   without calling apt. New package lists (apt-get update) trigger a rebuild, which gives
#   identical archives if no package version changed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${1:-$repo/target/images}
cache=${RKUBE_IMAGE_CACHE:-$repo/target/image-debs}
epoch=${SOURCE_DATE_EPOCH:-0}
archives=(nginx.tar busybox.tar curl.tar busyboxplus-curl.tar)
path_env="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
cache=$(cd "$cache" && pwd)

# One build at a time per output directory: tests may start this script concurrently.
exec 9>"$out/.lock"
flock 9

stamp() {
  {
    (cd "$here" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null || true
    echo "epoch=$epoch"
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  [[ -z ${RKUBE_IMAGES_FORCE:-} && -f $out/.stamp && $(cat "$out/.stamp") == "$(stamp)" ]] || return 1
  local archive
  for archive in "${archives[@]}"; do [[ -f $out/$archive ]] || return 1; done
}

if up_to_date; then
  echo "images: up to date in $out" >&2
  exit 0
fi

log() { echo "images: $*" >&2; }

# Builds into different output directories still share the .deb cache, which apt-get download
# writes and the end of the build prunes.
exec 8>"$cache/.lock"
flock 8

apt_updated=""
apt_update_once() {
  if [[ -z $apt_updated ]]; then
    log "running apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
}

work="$out/.work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# ---- Which packages, at which versions, and their .debs.
roots=(nginx nginx-common busybox-static coreutils curl ca-certificates)
declare -A deb_of=() current=()

# fetch_debs resolves the package set and downloads what the cache lacks. It fails when apt's
# lists are missing or stale (the mirror no longer has a listed version); the caller then
# updates the lists and runs it again from the resolution on.
fetch_debs() {
  local name version arch file wanted=()
  deb_of=() current=()
  python3 "$here/ocitool.py" resolve "${roots[@]}" >"$work/packages.txt" || return 1
  [[ -s $work/packages.txt ]] || return 1
  while read -r name version arch; do
    file="${name}_${version//:/%3a}_${arch}.deb"
    deb_of[$name]=$file
    current[$file]=1
    [[ -f $cache/$file ]] && continue
    if [[ -f /var/cache/apt/archives/$file ]]; then
      cp "/var/cache/apt/archives/$file" "$cache/$file.part" && mv "$cache/$file.part" "$cache/$file"
    else
      wanted+=("$name=$version")
    fi
  done <"$work/packages.txt"
  if ((${#wanted[@]})); then
    log "downloading ${#wanted[@]} packages"
    # The sandbox user option avoids apt's warning that _apt cannot write to the cache dir.
    (cd "$cache" && apt-get download -qq -o APT::Sandbox::User=root "${wanted[@]}") || return 1
  fi
}
if ! fetch_debs; then
  apt_update_once
  fetch_debs
fi
# Old versions would only accumulate, so the cache keeps just the current set.
for deb in "$cache"/*.deb; do
  if [[ -e $deb && -z ${current[${deb##*/}]:-} ]]; then rm -f "$deb"; fi
done

# ---- Unpack them all into one sysroot.
sysroot="$work/sysroot"
mkdir -p "$sysroot"
for name in "${!deb_of[@]}"; do
  dpkg-deb -x "$cache/${deb_of[$name]}" "$sysroot"
done
loader="$sysroot/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
libpath="$sysroot/lib/x86_64-linux-gnu:$sysroot/usr/lib/x86_64-linux-gnu:$sysroot/lib:$sysroot/usr/lib"
version_of() { awk -v n="$1" '$1 == n { print $2 }' "$work/packages.txt"; }

# copy_path REL ROOTFS copies one sysroot path into the rootfs, and when it is a symlink also
# the file it points to, so soname links and their targets both arrive.
copy_path() {
  local rel=$1 rootfs=$2 target next
  [[ -e $sysroot/$rel || -L $sysroot/$rel ]] || { log "missing in sysroot: /$rel"; return 1; }
  [[ -e $rootfs/$rel || -L $rootfs/$rel ]] && return 0
  mkdir -p "$rootfs/$(dirname "$rel")"
  cp -a "$sysroot/$rel" "$rootfs/$rel"
  if [[ -L $sysroot/$rel ]]; then
    target=$(readlink "$sysroot/$rel")
    if [[ $target == /* ]]; then next=$target; else next="/$(dirname "$rel")/$target"; fi
    next=$(realpath -m -s "$next")
    copy_path "${next#/}" "$rootfs"
  fi
}

# copy_elf REL ROOTFS copies a dynamically linked binary, its loader and every library it
# loads, all from the sysroot.
copy_elf() {
  local rel=$1 rootfs=$2 line lib
  copy_path "$rel" "$rootfs"
  copy_path lib64/ld-linux-x86-64.so.2 "$rootfs"
  while read -r line; do
    case $line in
      *"not found"*) log "/$rel: library $line"; return 1 ;;
      *" => "*)
        lib=${line#* => }
        lib=${lib%% (*}
        if [[ $lib != "$sysroot"/* ]]; then
          log "/$rel: $lib comes from outside the Debian packages"
          return 1
        fi
        copy_path "${lib#"$sysroot"/}" "$rootfs"
        ;;
    esac
  done < <("$loader" --inhibit-cache --library-path "$libpath" --list "$sysroot/$rel")
}

# The base every image starts from, built once and copied.
make_base() {
  local rootfs=$1 applet dir slashes up
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/local/sbin,etc,root,home}
  mkdir -p "$rootfs"/{dev,proc,sys,run,tmp,var/tmp,var/log}
  chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
  chmod 700 "$rootfs/root"
  ln -s ../run "$rootfs/var/run"
  copy_path bin/busybox "$rootfs"
  # Relative links resolve both inside the container and when the rootfs is inspected from
  # the host, where an absolute /bin/busybox would point at the host's own file.
  for applet in $("$sysroot/bin/busybox" --list-full); do
    [[ $applet == */* && $applet != bin/busybox ]] || continue
    dir=${applet%/*}
    slashes=${dir//[^\/]/}
    up=..
    for ((i = 0; i < ${#slashes}; i++)); do up+=/..; done
    mkdir -p "$rootfs/$dir"
    ln -s "$up/bin/busybox" "$rootfs/$applet"
  done
  # Debian builds busybox-static without the printenv applet, and `kubectl exec POD --
  # printenv` is how the tutorial looks into a pod, so coreutils' own printenv comes along.
  copy_elf usr/bin/printenv "$rootfs"
  install -m 644 "$here/files/base/passwd" "$here/files/base/group" "$here/files/base/nsswitch.conf" "$rootfs/etc/"
}
base() {
  mkdir -p "$(dirname "$1")"
  cp -a "$work/base" "$1"
}

# ca_bundle ROOTFS concatenates Mozilla's roots as update-ca-certificates would, since the
# bundle itself is generated at install time and is not in the .deb.
ca_bundle() {
  local rootfs=$1
  mkdir -p "$rootfs/etc/ssl/certs"
  # awk 1 copies each file line by line, adding the final newline a file might lack.
  find "$sysroot/usr/share/ca-certificates/mozilla" -name '*.crt' -print0 | LC_ALL=C sort -z | xargs -0 awk 1 \
    >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  chmod 644 "$rootfs/etc/ssl/certs/ca-certificates.crt"
}

pack() {
  local name=$1
  shift
  python3 "$here/ocitool.py" pack --rootfs "$work/rootfs/$name" --out "$out/$name.tar" --epoch "$epoch" "$@" \
    >>"$work/images.txt"
}

make_base "$work/base"

# ---- nginx
r="$work/rootfs/nginx"
base "$r"
copy_elf usr/sbin/nginx "$r"
for f in mime.types fastcgi_params fastcgi.conf scgi_params uwsgi_params koi-utf koi-win win-utf; do
  copy_path "etc/nginx/$f" "$r"
done
install -D -m 644 "$here/files/nginx/nginx.conf" "$r/etc/nginx/nginx.conf"
install -D -m 644 "$here/files/nginx/default.conf" "$r/etc/nginx/conf.d/default.conf"
copy_path usr/share/nginx/html/index.html "$r"
install -m 644 "$here/files/nginx/50x.html" "$r/usr/share/nginx/html/50x.html"
mkdir -p "$r"/{var/lib/nginx,var/cache/nginx,var/log/nginx,usr/lib/nginx/modules}
ln -s /dev/stdout "$r/var/log/nginx/access.log"
ln -s /dev/stderr "$r/var/log/nginx/error.log"
echo 'nginx:x:101:101:nginx user:/nonexistent:/bin/false' >>"$r/etc/passwd"
echo 'nginx:x:101:' >>"$r/etc/group"
nginx_version=$(version_of nginx)
pack nginx --ref docker.io/library/nginx:latest --repo-tag nginx:latest \
  --env "$path_env" --env "NGINX_VERSION=${nginx_version%%-*}" \
  --cmd '["nginx","-g","daemon off;"]' --port 80/tcp --stop-signal SIGQUIT \
  --history "rkube images/build.sh: Debian nginx $nginx_version, busybox-static $(version_of busybox-static)"

# ---- busybox
r="$work/rootfs/busybox"
base "$r"
pack busybox --ref docker.io/library/busybox:latest --repo-tag busybox:latest \
  --env "$path_env" --cmd '["sh"]' \
  --history "rkube images/build.sh: Debian busybox-static $(version_of busybox-static)"

# ---- curlimages/curl and radial/busyboxplus:curl
curl_history="rkube images/build.sh: Debian curl $(version_of curl), busybox-static $(version_of busybox-static)"
for name in curl busyboxplus-curl; do
  r="$work/rootfs/$name"
  base "$r"
  copy_elf usr/bin/curl "$r"
  ca_bundle "$r"
done
install -m 755 "$here/files/curl/entrypoint.sh" "$work/rootfs/curl/entrypoint.sh"
pack curl --ref docker.io/curlimages/curl:latest --repo-tag curlimages/curl:latest \
  --env "$path_env" --entrypoint '["/entrypoint.sh"]' --cmd '["curl"]' --history "$curl_history"
pack busyboxplus-curl --ref docker.io/radial/busyboxplus:curl --repo-tag radial/busyboxplus:curl \
  --env "$path_env" --cmd '["/bin/sh"]' --history "$curl_history"

# ---- Summary and stamp.
{
  echo "# archive size reference manifest-digest (built from the Debian packages in packages.txt)"
  while read -r ref digest _; do
    case $ref in
      docker.io/library/nginx:latest) file=nginx.tar ;;
      docker.io/library/busybox:latest) file=busybox.tar ;;
      docker.io/curlimages/curl:latest) file=curl.tar ;;
      docker.io/radial/busyboxplus:curl) file=busyboxplus-curl.tar ;;
    esac
    echo "$file $(stat -c %s "$out/$file") $ref $digest"
  done <"$work/images.txt"
} >"$out/images.txt"
cp "$work/packages.txt" "$out/packages.txt"
stamp >"$out/.stamp"
cat "$out/images.txt" >&2
