! graft from Fortran, sequences: an LSTM frozen at its random initialisation, read at every
! step (flatten) by a fresh head, learns from sequences of different lengths whether a
! signal rises or falls; the loss falls and a fresh batch is scored.
program sequence
  use, intrinsic :: iso_c_binding
  use graft
  implicit none
  integer, parameter :: classes = 2, batch = 16, steps = 12, features = 2
  type(c_ptr) :: model
  real(c_float) :: x(features * steps * batch)
  integer(c_int32_t) :: labels(batch), lengths(batch)
  integer(c_int64_t) :: shape(3) = [int(batch, c_int64_t), int(steps, c_int64_t), int(features, c_int64_t)]
  real(c_double) :: loss, first, accuracy
  integer :: step

  if (graft_model_create_sequence("lstm:16,flatten,dense:N"//c_null_char, int(steps, c_int64_t), &
                                  int(features, c_int64_t), classes, 5_c_int64_t, GRAFT_DEVICE_CPU, model) /= GRAFT_OK) &
    call die("create_sequence")
  if (graft_model_freeze(model, "lstm"//c_null_char) /= GRAFT_OK) call die("freeze")
  if (graft_model_configure(model, int(batch, c_int64_t), "adam"//c_null_char, 1e-2, 0.0, 0.0) /= GRAFT_OK) &
    call die("configure")
  first = 0
  do step = 1, 40
    call make_batch(step)
    if (graft_model_train_step_sequence(model, x, labels, shape, lengths, GRAFT_MEMORY_HOST, c_null_ptr, loss) &
        /= GRAFT_OK) call die("train_step_sequence")
    if (step == 1) first = loss
    if (step == 1 .or. mod(step, 10) == 0) print '(a, i3, a, f8.4)', "step ", step, "  loss ", loss
  end do
  call make_batch(1000)
  if (graft_model_evaluate_sequence(model, x, labels, shape, lengths, GRAFT_MEMORY_HOST, c_null_ptr, loss, &
                                    accuracy) /= GRAFT_OK) call die("evaluate_sequence")
  print '(a, f8.4, a, f6.3)', "fresh batch: loss ", loss, "  accuracy ", accuracy
  if (.not. (loss < first)) then
    print '(a)', "the loss did not fall"
    call graft_model_destroy(model)
    error stop 1
  end if
  call graft_model_destroy(model)

contains

  ! Example i of class mod(i + seed, 2) has length 4..steps; feature 1 rises (class 0) or falls
  ! (class 1) over its steps, feature 2 is noise; the padding steps are zero.
  subroutine make_batch(seed)
    integer, intent(in) :: seed
    integer :: i, t
    real :: noise, r
    x = 0
    do i = 1, batch
      labels(i) = int(mod(i + seed, classes), c_int32_t)
      call random_number(r)
      lengths(i) = int(4 + floor(r * (steps - 3)), c_int32_t)
      do t = 1, lengths(i)
        call random_number(noise)
        x(((i - 1) * steps + (t - 1)) * features + 1) = merge(1.0, -1.0, labels(i) == 0) * real(t) / real(lengths(i))
        x(((i - 1) * steps + (t - 1)) * features + 2) = noise - 0.5
      end do
    end do
  end subroutine

  subroutine die(what)
    character(len=*), intent(in) :: what
    print '(a)', what // ": " // last_error(model)
    call graft_model_destroy(model)
    error stop 1
  end subroutine
end program sequence
