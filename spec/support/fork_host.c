/*
 * fork_host.c - a Lua interpreter with fork() for spec/queue/fork_spec.lua (Lua has none).
 * Runs the script named by argv[1] with three extra globals:
 *   fork_process()      -> pid in the parent, 0 in the child
 *   wait_process(pid)   -> the child's exit status (or -1)
 *   exit_process(code)  -> exit(code): atexit hooks run, lua_close does not
 * Built by the spec with `cc` and pkg-config for the interpreter under test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int host_fork(lua_State *L) {
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "fork failed");
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

static int host_wait(lua_State *L) {
  int status = 0;
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) lua_pushinteger(L, -1);
  else lua_pushinteger(L, WEXITSTATUS(status));
  return 1;
}

static int host_exit(lua_State *L) {
  fflush(NULL);
  exit((int)luaL_checkinteger(L, 1));
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  int rc;
  if (argc < 2) {
    fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 2;
  luaL_openlibs(L);
  lua_register(L, "fork_process", host_fork);
  lua_register(L, "wait_process", host_wait);
  lua_register(L, "exit_process", host_exit);
  rc = luaL_dofile(L, argv[1]);
  if (rc != 0) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  return rc == 0 ? 0 : 1;
}
