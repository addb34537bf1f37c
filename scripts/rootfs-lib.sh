# Root filesystems for images built from Debian packages, with or without a container engine
# (the Dockerfile and the real test cluster's images use the same functions). Sourced; each
# function exits the script with a message on failure.
#   rootfs_init DIR                       empty merged-/usr skeleton with root, nobody, nonroot
#   package_of FILE                       the Debian package that holds FILE
#   library_packages FILE...              the packages holding FILEs' shared libraries
#   debs CACHE PKG...                     the registry's versions of the packages, downloaded
#                                         once into CACHE; prints "PKG DEB" for each
#   rootfs_add_packages DIR CACHE PKG...  the packages' files, unpacked into DIR (merged /usr)
#   rootfs_add_libraries DIR CACHE FILE...
#                                         exactly the shared libraries FILEs load (and the loader),
#                                         each taken from its package, with its symbolic links

rootfs_init() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,proc,sys,dev,run,root,home,var/tmp}
  install -d -m 1777 "$dir/tmp"
  ln -s usr/bin "$dir/bin"
  ln -s usr/sbin "$dir/sbin"
  ln -s usr/lib "$dir/lib"
  ln -s usr/lib64 "$dir/lib64"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'nonroot:x:65532:' >"$dir/etc/group"
}

# ldd prints "FILE:" before each file's libraries when given several; those are not libraries.
shared_libraries() {
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u
}

# rootfs_unpack CACHE PKG...: each package unpacked as it is into CACHE/unpacked/PKG.
rootfs_unpack() {
  local cache=$1 list pkg deb
  shift
  list=$(debs "$cache" "$@") || exit 1
  while read -r pkg deb; do
    [ -d "$cache/unpacked/$pkg" ] && continue
    mkdir -p "$cache/unpacked/$pkg"
    dpkg-deb -x "$deb" "$cache/unpacked/$pkg" || { echo "rootfs: cannot extract $deb" >&2; exit 1; }
  done <<<"$list"
}

# owners FILE...: "FILE PACKAGE" for each file, from one dpkg query (each query reads every
# package's file list). Debian registers files under /lib or /usr/lib; ldd may print either.
owners() {
  local f found
  found=$(for f in "$@"; do printf '%s\n%s\n%s\n' "$f" "${f#/usr}" "/usr${f#/usr}"; done | sort -u |
    xargs dpkg -S 2>/dev/null | sed 's/^\([^:]*\)\(:[a-z0-9]*\)*: \(.*\)$/\3 \1/')
  for f in "$@"; do
    local pkg
    pkg=$(awk -v a="$f" -v b="${f#/usr}" -v c="/usr${f#/usr}" '$1 == a || $1 == b || $1 == c {print $2; exit}' <<<"$found")
    [ -n "$pkg" ] || { echo "rootfs: no Debian package holds $f" >&2; exit 1; }
    echo "$f $pkg"
  done
}

# The package that holds FILE.
package_of() { owners "$1" | awk '{print $2}'; }

# The packages ldd resolves FILEs' libraries to on this machine, which has the same packages
# installed as the image gets.
library_packages() {
  # shellcheck disable=SC2046 # one library path per word
  owners $(shared_libraries "$@") | awk '{print $2}' | sort -u
}

debs() {
  local cache uris uri file size rest
  cache=$(realpath -m "$1")
  shift
  mkdir -p "$cache"
  # The registry's versions (the ones installed here may no longer be served; within a Debian
  # release a package keeps its libraries' names, which is what ldd resolved here). One apt
  # query for all: apt rebuilds its package cache on every call on this machine.
  # (apt leaves out the files already in its working folder, so it asks from elsewhere.)
  uris=$(cd / && apt-get download --print-uris "$@" 2>"$cache/download.err") || {
    echo "rootfs: the Debian package registry has no $*:" >&2
    cat "$cache/download.err" >&2
    exit 1
  }
  local missing=()
  while read -r uri file size rest; do
    [ "$(stat -c %s "$cache/$file" 2>/dev/null)" = "$size" ] || missing+=("${file%%_*}")
  done <<<"$uris"
  if [ ${#missing[@]} -gt 0 ]; then
    (cd "$cache" && apt-get download -qq "${missing[@]}" >/dev/null 2>download.err) || {
      echo "rootfs: cannot download ${missing[*]} from the Debian package registry:" >&2
      cat "$cache/download.err" >&2
      exit 1
    }
  fi
  while read -r uri file size rest; do echo "${file%%_*} $cache/$file"; done <<<"$uris"
}

rootfs_add_packages() {
  local dir=$1 cache=$2 list pkg deb
  shift 2
  list=$(debs "$cache" "$@") || exit 1
  while read -r pkg deb; do
    # Merged /usr: the package's /bin, /lib, ... land in /usr through the skeleton's links.
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$dir" || {
      echo "rootfs: cannot extract $deb" >&2
      exit 1
    }
  done <<<"$list"
}

rootfs_add_libraries() {
  local dir=$1 cache=$2 libs lib pkg x path target deb
  shift 2
  libs=$(shared_libraries "$@")
  [ -n "$libs" ] || { echo "rootfs: ldd found no libraries for $*" >&2; exit 1; }
  mkdir -p "$cache"
  # shellcheck disable=SC2086 # one library path per word
  owners $libs >"$cache/owners" || exit 1
  rootfs_unpack "$cache" $(awk '{print $2}' "$cache/owners" | sort -u)
  while read -r lib pkg; do
    x=$cache/unpacked/$pkg
    for path in "$lib" "${lib#/usr}" "/usr$lib"; do
      { [ -e "$x$path" ] || [ -L "$x$path" ]; } && break
    done
    { [ -e "$x$path" ] || [ -L "$x$path" ]; } || { echo "rootfs: $pkg does not hold $lib" >&2; exit 1; }
    # The link chain (libssl.so.3 -> libssl.so.3.x, the loader's absolute link) to its file;
    # in the image every path lives under /usr.
    while :; do
      mkdir -p "$dir/usr$(dirname "${path#/usr}")"
      cp -a "$x$path" "$dir/usr${path#/usr}"
      [ -L "$x$path" ] || break
      target=$(readlink "$x$path")
      case "$target" in
        /*) path=$target ;;
        *) path=$(dirname "$path")/$target ;;
      esac
    done
  done <"$cache/owners"
}
