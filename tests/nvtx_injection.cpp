// A minimal NVTX tool for tests/nvtx_test.cpp: NVTX loads this library when
// NVTX_INJECTION64_PATH names it, and it appends every range push and pop to the file
// named by GRAFT_NVTX_LOG, one line each:
//   push <thread> <domain> <name>
//   pop <thread> <domain>
// (<domain> is "-" for NVTX's default domain). Nothing is recorded without GRAFT_NVTX_LOG.
#include <nvtx3/nvToolsExt.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace {

struct Log {
  std::mutex mutex;
  std::FILE* file = nullptr;
  std::deque<std::string> domains;  // a domain handle points at its name here
  ~Log() {
    if (file) std::fclose(file);
  }
};

Log& log() {
  static Log l;
  return l;
}

const char* domain_name(nvtxDomainHandle_t d) { return d ? reinterpret_cast<const std::string*>(d)->c_str() : "-"; }

std::string message(const nvtxEventAttributes_t* a) {
  if (!a) return "?";
  if (a->messageType == NVTX_MESSAGE_TYPE_ASCII && a->message.ascii) return a->message.ascii;
  return "?";  // only ASCII messages are expected from graft
}

void record(const char* what, nvtxDomainHandle_t d, const std::string* name) {
  Log& l = log();
  const std::lock_guard<std::mutex> lock(l.mutex);
  if (!l.file) return;
  const size_t thread = std::hash<std::thread::id>{}(std::this_thread::get_id());
  if (name)
    std::fprintf(l.file, "%s %zx %s %s\n", what, thread, domain_name(d), name->c_str());
  else
    std::fprintf(l.file, "%s %zx %s\n", what, thread, domain_name(d));
  std::fflush(l.file);  // the process may end by exit() or a signal
}

nvtxDomainHandle_t domain_create(const char* name) {
  Log& l = log();
  const std::lock_guard<std::mutex> lock(l.mutex);
  l.domains.emplace_back(name ? name : "");
  return reinterpret_cast<nvtxDomainHandle_t>(&l.domains.back());
}

void domain_destroy(nvtxDomainHandle_t) {}  // names stay until exit: the handle may be printed later

int domain_push(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) {
  const std::string name = message(a);
  record("push", d, &name);
  return 0;
}

int domain_pop(nvtxDomainHandle_t d) {
  record("pop", d, nullptr);
  return 0;
}

int push_ex(const nvtxEventAttributes_t* a) { return domain_push(nullptr, a); }

int push_a(const char* m) {
  const std::string name = m ? m : "?";
  record("push", nullptr, &name);
  return 0;
}

int pop() { return domain_pop(nullptr); }

// Points entry `id` of a module's table at `fn`, when the table has that entry.
template <typename F>
void attach(NvtxFunctionTable table, unsigned size, unsigned id, F fn) {
  if (id < size && table[id]) *table[id] = reinterpret_cast<NvtxFunctionPointer>(fn);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_table) {
  if (const char* path = std::getenv("GRAFT_NVTX_LOG")) {
    log().file = std::fopen(path, "a");
    if (!log().file) return 0;
  }
  const auto* callbacks = static_cast<const NvtxExportTableCallbacks*>(get_table(NVTX_ETID_CALLBACKS));
  if (!callbacks || callbacks->struct_size < sizeof(NvtxExportTableCallbacks)) return 0;
  NvtxFunctionTable core = nullptr, core2 = nullptr;
  unsigned core_size = 0, core2_size = 0;
  if (!callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &core, &core_size) ||
      !callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &core2, &core2_size))
    return 0;
  attach(core, core_size, NVTX_CBID_CORE_RangePushEx, push_ex);
  attach(core, core_size, NVTX_CBID_CORE_RangePushA, push_a);
  attach(core, core_size, NVTX_CBID_CORE_RangePop, pop);
  attach(core2, core2_size, NVTX_CBID_CORE2_DomainCreateA, domain_create);
  attach(core2, core2_size, NVTX_CBID_CORE2_DomainDestroy, domain_destroy);
  attach(core2, core2_size, NVTX_CBID_CORE2_DomainRangePushEx, domain_push);
  attach(core2, core2_size, NVTX_CBID_CORE2_DomainRangePop, domain_pop);
  return 1;
}
