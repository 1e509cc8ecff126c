// A data-parallel step: normaliser sums, weighted gradient sums, metric sums.
#include "runtime/data_parallel.h"

#include "base/error.h"

namespace graft {

DataParallel::DataParallel(Communicator& comm, Executor& ex, int64_t global_batch, size_t bucket_bytes)
    : comm_(comm), ex_(ex), shard_(make_shard(comm.rank(), comm.size(), global_batch)), reducer_(comm, ex, bucket_bytes) {
  GRAFT_ASSERT(ex.batch() >= local_batch(global_batch, comm.size()), "an executor for ", ex.batch(),
               " rows cannot take a rank's share of ", global_batch);
}

double DataParallel::loss_normaliser(int64_t n) const {
  const auto& weights = ex_.options().class_weights;
  if (weights.empty()) return double(n);  // the mean over the batch's examples
  double sum = 0;  // a weighted mean: over the batch's class weights
  for (int64_t i = 0; i < n; ++i) sum += weights[size_t(ex_.labels()[i])];
  return sum;
}

bool DataParallel::begin_step(int64_t n, bool reduce) {
  // [rows, normaliser] of the global batch.
  const double mine = loss_normaliser(n);
  double totals[2] = {double(n), mine};
  comm_.sum(totals, 2, "the batch size over the ranks");
  if (totals[0] == 0) return false;
  // This rank's rows of the global batch: its dropout masks are one process's for them.
  ex_.set_first_row(shard_.rows(int64_t(totals[0])).first);
  // This rank's loss was a mean over its own normaliser; in the global mean it weighs
  // mine / total, and finish_step divides the sum by the ranks.
  const double total = totals[1] > 0 ? totals[1] : 1;
  prescale_ = n > 0 && mine > 0 ? float(double(comm_.size()) * mine / total) : 1.0f;
  reduce_ = reduce;
  if (reduce)
    reducer_.begin_step(prescale_);
  else
    reducer_.skip_step();
  return true;
}

void DataParallel::finish_step(int64_t n) {
  const size_t count = size_t(ex_.trainable_count());
  if (n == 0) ex_.ops().zero(ex_.gradients(), count * sizeof(float));
  if (reduce_) {
    reducer_.finish(1.0f / float(comm_.size()));
  } else if (prescale_ != 1.0f) {
    ex_.ops().scale(int64_t(count), prescale_, ex_.gradients());
  }
}

void DataParallel::sum_accumulated(float* data, size_t count) {
  const char* what = "the accumulated gradient sum";
  // The reducer's path: device memory through NCCL, host memory through MPI.
  if (ex_.model().on_device() != comm_.gradients_on_device())
    fail("data-parallel --grad-accumulation needs gradients where ", comm_.describe(), " sums them");
  comm_.start_sum(data, count, what);
  comm_.wait_all(what);
  ex_.ops().scale(int64_t(count), 1.0f / float(comm_.size()), data);
}

Metrics DataParallel::sum(const Metrics& m) {
  double v[3] = {m.loss_sum, m.correct, m.count};
  comm_.sum(v, 3, "the metrics over the ranks");
  return Metrics{v[0], v[1], v[2]};
}

}  // namespace graft
