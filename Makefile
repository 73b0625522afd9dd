# Two entry points: `make app` and `make test`. Both install what they need into .venv first,
# and skip the install when pyproject.toml has not changed since the last one.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: app test chromium

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# The CPU build on local disk; a bare `torch` requirement would pull gigabytes of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

# The browser test drives Debian's chromium; install it when it is missing and we may.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed and we are not root: the browser test will be skipped"; fi; }

test: $(STAMP) chromium
	$(PY) -m pytest -q
