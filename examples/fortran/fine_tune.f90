! graft from Fortran: a frozen fmnist_cnn base with a fresh head, fine-tuned on frames an
! array program makes in memory (a stripe whose position is the class), the loss falling.
program fine_tune
  use, intrinsic :: iso_c_binding
  use graft
  implicit none
  integer, parameter :: classes = 2, batch = 16, side = 28
  type(c_ptr) :: model
  real(c_float) :: images(side * side * batch), noise
  integer(c_int32_t) :: labels(batch)
  integer(c_int64_t) :: shape(4) = [int(batch, c_int64_t), int(side, c_int64_t), int(side, c_int64_t), 1_c_int64_t]
  real(c_double) :: loss, first
  integer :: step, i, x, y

  if (graft_model_create("fmnist_cnn"//c_null_char, [28_c_int64_t, 28_c_int64_t, 1_c_int64_t], classes, &
                         "flatten,dense:16,relu,dense:N"//c_null_char, 3_c_int64_t, GRAFT_DEVICE_CPU, model) /= GRAFT_OK) &
    call die("create")
  if (graft_model_freeze(model, "conv*"//c_null_char) /= GRAFT_OK) call die("freeze")
  if (graft_model_configure(model, int(batch, c_int64_t), "adam"//c_null_char, 3e-3, 0.0, 0.0) /= GRAFT_OK) &
    call die("configure")
  first = 0
  do step = 1, 30
    do i = 1, batch
      labels(i) = int(mod(i + step, classes), c_int32_t)
      do y = 1, side
        do x = 1, side  ! C order: x fastest within a row, rows within an image
          call random_number(noise)
          images(((i - 1) * side + (y - 1)) * side + x) = 0.2 * noise
          if ((labels(i) == 0 .and. y <= 14) .or. (labels(i) == 1 .and. y > 14)) &
            images(((i - 1) * side + (y - 1)) * side + x) = images(((i - 1) * side + (y - 1)) * side + x) + 1.0
        end do
      end do
    end do
    if (graft_model_train_step(model, images, labels, shape, GRAFT_MEMORY_HOST, c_null_ptr, loss) /= GRAFT_OK) &
      call die("train_step")
    if (step == 1) first = loss
    if (step == 1 .or. mod(step, 10) == 0) print '(a, i3, a, f8.4)', "step ", step, "  loss ", loss
  end do
  if (.not. (loss < first)) then
    print '(a)', "the loss did not fall"
    call graft_model_destroy(model)
    error stop 1
  end if
  call graft_model_destroy(model)

contains

  subroutine die(what)
    character(len=*), intent(in) :: what
    print '(a)', what // ": " // last_error(model)
    call graft_model_destroy(model)
    error stop 1
  end subroutine
end program fine_tune
