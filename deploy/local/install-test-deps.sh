#!/usr/bin/env bash
# Installs the real servers and tools the test suite uses when they are missing, and says nothing otherwise:
# from Debian's packages PostgreSQL (the SPGL exchange database in integration tests), Prometheus (promtool checks
# the alert rules; the server runs the dashboard's queries), systemd (`systemd-analyze verify` on the units) and
# Chromium with its driver (the supervision view's headless-browser test, driven by selenium);
# Helm built from its Go module and kubernetes-validate (with its Kubernetes schemas) from PyPI, both kept in
# ~/.cache/ubridge/tools by version and linked from ~/.cache/ubridge/bin, where the tests look for them.
set -euo pipefail
HELM_VERSION=v4.3.2
KUBERNETES_VALIDATE_VERSION=1.37.0
CACHE="${HOME}/.cache/ubridge"

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || need+=(chromium chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> installing ${need[*]} from Debian's packages"
  # A concurrent apt run holds the lock for a while; wait for it rather than fail.
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${need[@]}"
fi

mkdir -p "${CACHE}/bin" "${CACHE}/tools"
helm_dir="${CACHE}/tools/helm-${HELM_VERSION}"
if [ ! -x "${helm_dir}/helm" ]; then
  command -v go >/dev/null 2>&1 || { echo "install-test-deps: Go is needed to build helm (go install)" >&2; exit 1; }
  echo "==> building helm ${HELM_VERSION} from its Go module (a few minutes, once)"
  # Go names every module it downloads (over a hundred): keep that in a log, shown only on failure.
  if ! GOBIN="${helm_dir}" go install "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}" 2>"${CACHE}/tools/helm-build.log"; then
    cat "${CACHE}/tools/helm-build.log" >&2
    exit 1
  fi
fi
ln -sfn "${helm_dir}/helm" "${CACHE}/bin/helm"

validate_dir="${CACHE}/tools/kubernetes-validate-${KUBERNETES_VALIDATE_VERSION}"
if [ ! -x "${validate_dir}/bin/kubernetes-validate" ]; then
  echo "==> installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} (Kubernetes JSON schemas) from PyPI"
  rm -rf "${validate_dir}"
  python3 -m venv "${validate_dir}"
  "${validate_dir}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
ln -sfn "${validate_dir}/bin/kubernetes-validate" "${CACHE}/bin/kubernetes-validate"
