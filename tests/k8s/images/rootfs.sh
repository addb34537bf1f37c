# Root filesystems for images built without a container engine, from Debian packages.
# Sourced by the image build scripts; each function exits the script with a message on failure.
#   rootfs_init DIR                      empty merged-/usr skeleton with root and nobody users
#   library_packages FILE...             the Debian packages holding FILEs' shared libraries
#   rootfs_add_packages DIR CACHE PKG... extract the packages (the Debian registry's versions,
#                                        downloaded once into CACHE) into DIR

rootfs_init() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,proc,sys,dev,run,root,home,var/tmp}
  install -d -m 1777 "$dir/tmp"
  ln -s usr/bin "$dir/bin"
  ln -s usr/sbin "$dir/sbin"
  ln -s usr/lib "$dir/lib"
  ln -s usr/lib64 "$dir/lib64"
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# Prints the packages whose files are the shared libraries FILEs load (ldd resolves them on this
# machine, which has the same packages installed as the image gets).
library_packages() {
  local libs lib pkg
  # ldd prints "FILE:" before each file's libraries when given several; those are not libraries.
  libs=$(ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u)
  for lib in $libs; do
    # Debian registers files under /lib or /usr/lib; ldd may print either.
    pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null) || {
      echo "rootfs: no Debian package holds $lib" >&2
      exit 1
    }
    echo "${pkg%%:*}"
  done | sort -u
}

rootfs_add_packages() {
  local dir=$1 cache=$2
  shift 2
  mkdir -p "$cache"
  local pkg version deb
  for pkg in "$@"; do
    # The registry's version (the one installed here may no longer be served; within a Debian
    # release a package keeps its libraries' names, which is what ldd resolved here).
    version=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
      echo "rootfs: Debian package $pkg is not available" >&2
      exit 1
    fi
    deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | grep -F "_${version//:/%3a}_" | head -1 || true)
    if [ -z "$deb" ]; then
      (cd "$cache" && apt-get download -qq "$pkg=$version" >/dev/null 2>"$pkg.err") || {
        echo "rootfs: cannot download $pkg=$version from the Debian package registry:" >&2
        cat "$cache/$pkg.err" >&2
        exit 1
      }
      rm -f "$cache/$pkg.err"
      deb=$(ls "$cache/${pkg}_"*.deb | grep -F "_${version//:/%3a}_" | head -1)
    fi
    # Merged /usr: the package's /bin, /lib, ... land in /usr through the skeleton's links.
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$dir" || {
      echo "rootfs: cannot extract $deb" >&2
      exit 1
    }
  done
}
