# lua-customerio - build, test, demo, bench.
#   make                 build the C core for Lua 5.4 (build/5.4/customerio/core.so)
#   make LUA=luajit      build it for LuaJIT 2.1 (OpenResty's ABI)
#   make test            build for 5.4, LuaJIT, 5.3 and 5.1, run the busted suite on each and luacheck
#   make LUA=5.3         build it for Lua 5.3 (also LUA=5.1: Debian's lua5.1/lua5.3 + -dev packages)
#   make static          build/5.4/libcustomerio.a + include/customerio.h: C core and Lua modules in
#                        one library for hosts that embed Lua (examples/embed; make static LUA=5.3 ...)
#   make demo            run examples/quickstart.lua against the built-in sandbox
#   make bench           run the benchmarks in bench/
#   make sandbox         serve the Customer.io emulator on 127.0.0.1:8180 (any client can use it)
#   make docs            API reference with LDoc into docs/api
#   make deps            install the Debian packages (first thing on a fresh machine)
#   make check-memory    the suite under ASan + UBSan, then a subset under valgrind (tools/check-memory.sh)
#   make fuzz            libFuzzer harnesses, FUZZ_SECONDS each (default 20; fuzz/README.md)

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
WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Werror=implicit-function-declaration
CFLAGS  += $(OPT) -g -fPIC -std=c99 -D_GNU_SOURCE $(WARN) $(shell pkg-config --cflags $(LUA_PC) libcurl libcjson libcrypto hiredis)
LDLIBS  += $(shell pkg-config --libs libcurl libcjson libcrypto hiredis) -lpthread
SANFLAGS :=

export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;$(CURDIR)/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all build deps test test-one lint demo bench docs clean sandbox check-memory fuzz static embed-host

all: build
build: $(CORE_SO)

# Debian packages (apt-get; skipped when all are present). `make deps test` on a fresh machine.
deps:
	@sh .ci/install-deps

$(CORE_SO): $(SRCS) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -shared -o $@ $(SRCS) $(LDLIBS) $(SANFLAGS)

# The full suite: four Lua versions, luacheck, one summary line for CI. (spec/embed_spec.lua
# builds the static library and the example host for the interpreter it runs on.)
test:
	@$(MAKE) --no-print-directory LUA=5.4 build
	@$(MAKE) --no-print-directory LUA=luajit build
	@$(MAKE) --no-print-directory LUA=5.3 build
	@$(MAKE) --no-print-directory LUA=5.1 build
	@sh spec/run.sh 5.4 luajit 5.3 5.1

# One interpreter only, e.g. make test-one LUA=luajit
test-one: build
	@sh spec/run.sh $(LUA)

# Static library for hosts that embed Lua: the C core plus every pure-Lua module (compiled in
# by tools/embed-lua.lua; the nginx-only ones are left out), behind include/customerio.h.
# Only luaopen_customerio and luaopen_customerio_core stay global symbols.
STATIC_LIB  := $(BUILD)/libcustomerio.a
STATIC_OBJS := $(patsubst src/%.c,$(BUILD)/static/%.o,$(SRCS))
EMBED_SKIP  := $(wildcard lua/customerio/transport/ngx/*.lua) lua/customerio/queue/ngx.lua lua/customerio/sandbox/server.lua \
               lua/customerio/ratelimit/redis/cosocket.lua
EMBED_LUA   := $(filter-out $(EMBED_SKIP),$(shell find lua/customerio -name '*.lua' | LC_ALL=C sort))
EMBED_H     := $(BUILD)/static/embedded_lua.h
EMBED_HOST  := $(BUILD)/embed-host
HOST_LIBS   := $(shell pkg-config --libs $(LUA_PC) libcurl libcjson libcrypto hiredis) -lpthread -lm -ldl

static: $(STATIC_LIB)

$(EMBED_H): $(EMBED_LUA) tools/embed-lua.lua
	@mkdir -p $(dir $@)
	@echo "$(LUA_BIN) tools/embed-lua.lua $@ lua ($(words $(EMBED_LUA)) modules)"
	@$(LUA_BIN) tools/embed-lua.lua $@ lua $(EMBED_LUA)

$(BUILD)/static/%.o: src/%.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCIO_EMBED -Iinclude -I$(BUILD)/static -c -o $@ $<

$(BUILD)/static/embed.o: $(EMBED_H) include/customerio.h

$(STATIC_LIB): $(STATIC_OBJS)
	$(LD) -r -o $(BUILD)/static/customerio.o $(STATIC_OBJS)
	objcopy --keep-global-symbol=luaopen_customerio --keep-global-symbol=luaopen_customerio_core \
		$(BUILD)/static/customerio.o
	rm -f $@
	$(AR) rcs $@ $(BUILD)/static/customerio.o

# The example host program (examples/embed/host.c), linked against the static library.
embed-host: $(EMBED_HOST)

$(EMBED_HOST): examples/embed/host.c include/customerio.h $(STATIC_LIB)
	$(CC) $(OPT) -g -std=c99 $(WARN) -Iinclude $(shell pkg-config --cflags $(LUA_PC)) -o $@ \
		examples/embed/host.c $(STATIC_LIB) $(HOST_LIBS)

lint:
	luacheck -q lua spec examples bench tools

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

# Memory checks (docs/SECURITY.md): the whole suite against build/asan (clang, ASan + UBSan),
# then a subset under valgrind memcheck with leak checking. Last line: "N passed, N failed".
check-memory:
	@sh tools/check-memory.sh

# libFuzzer harnesses (clang; ASan + UBSan), each run for FUZZ_SECONDS on its seed corpus.
FUZZ_SECONDS ?= 20
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh fuzz/run.sh

docs:
	ldoc -c config.ld .

clean:
	rm -rf build docs/api luacov.*
