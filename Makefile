# lua-customerio - build, test, demo, bench.
#   make                 build the C core for Lua 5.4 (build/5.4/customerio/core.so)
#   make LUA=luajit      build it for LuaJIT 2.1 (OpenResty's ABI)
#   make test            build for 5.4 and LuaJIT, run luacheck and the busted suite on both
#   make demo            run examples/quickstart.lua against the built-in sandbox
#   make bench           run the benchmarks in bench/
#   make sandbox         serve the Customer.io emulator on 127.0.0.1:8180 (any client can use it)
#   make docs            API reference with LDoc into docs/api
#   make deps            install the Debian packages (first thing on a fresh machine)

LUA ?= 5.4
ifeq ($(LUA),luajit)
  LUA_PC   := luajit
  LUA_BIN  := luajit
else
  LUA_PC   := lua$(LUA)
  LUA_BIN  := lua$(LUA)
endif

CC      ?= cc
SRCS    := $(wildcard src/*.c)
HDRS    := $(wildcard src/*.h)
BUILD   := build/$(LUA)
CORE_SO := $(BUILD)/customerio/core.so
OPT     ?= -O2
WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS  += $(OPT) -g -fPIC -std=c99 -D_GNU_SOURCE $(WARN) $(shell pkg-config --cflags $(LUA_PC) libcurl libcjson libcrypto)
LDLIBS  += $(shell pkg-config --libs libcurl libcjson libcrypto) -lpthread
SANFLAGS :=

export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;$(CURDIR)/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all build deps test test-one lint demo bench docs clean sandbox check-memory

all: build
build: $(CORE_SO)

# Debian packages (apt-get; skipped when all are present). `make deps test` on a fresh machine.
deps:
	@sh .ci/install-deps

$(CORE_SO): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -shared -o $@ $(SRCS) $(LDLIBS) $(SANFLAGS)

# The full suite: both Lua versions, luacheck, one summary line for CI.
test:
	@$(MAKE) --no-print-directory LUA=5.4 build
	@$(MAKE) --no-print-directory LUA=luajit build
	@sh spec/run.sh 5.4 luajit

# One interpreter only, e.g. make test-one LUA=luajit
test-one: build
	@sh spec/run.sh $(LUA)

lint:
	luacheck -q lua spec examples bench

demo: build
	$(LUA_BIN) examples/quickstart.lua

# The Customer.io emulator over HTTP on 127.0.0.1:8180 (PORT=... to change).
sandbox:
	@$(MAKE) --no-print-directory LUA=luajit build
	sh tools/sandbox $(or $(PORT),8180)

bench:
	@$(MAKE) --no-print-directory LUA=5.4 build
	@$(MAKE) --no-print-directory LUA=luajit build
	sh bench/run.sh

docs:
	ldoc -c config.ld .

clean:
	rm -rf build docs/api luacov.*
