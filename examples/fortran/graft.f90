! Fortran interfaces to graft's C API (graft/graft.h) through iso_c_binding: a model is a
! type(c_ptr); strings are passed NUL-terminated (trim(s)//c_null_char); shapes are NHWC
! {n, H, W, C} as integer(c_int64_t) arrays, and images in memory are C-ordered (C fastest).
! Sequence models take {n, steps, features} and each example's length (1..steps; the steps
! after it are padding the model never reads), features fastest, then steps.
module graft
  use, intrinsic :: iso_c_binding
  implicit none
  integer(c_int), parameter :: GRAFT_OK = 0, GRAFT_DEVICE_CPU = 0, GRAFT_MEMORY_HOST = 0
  interface
    function graft_model_create(architecture, input_hwc, classes, head, seed, device, model) &
        bind(C, name="graft_model_create") result(status)
      import :: c_char, c_int64_t, c_int, c_ptr
      character(kind=c_char), intent(in) :: architecture(*), head(*)
      integer(c_int64_t), intent(in) :: input_hwc(3)
      integer(c_int), value :: classes, device
      integer(c_int64_t), value :: seed
      type(c_ptr), intent(out) :: model
      integer(c_int) :: status
    end function
    subroutine graft_model_destroy(model) bind(C, name="graft_model_destroy")
      import :: c_ptr
      type(c_ptr), value :: model
    end subroutine
    function graft_model_last_error(model) bind(C, name="graft_model_last_error") result(message)
      import :: c_ptr
      type(c_ptr), value :: model
      type(c_ptr) :: message
    end function
    function graft_model_freeze(model, pattern) bind(C, name="graft_model_freeze") result(status)
      import :: c_ptr, c_char, c_int
      type(c_ptr), value :: model
      character(kind=c_char), intent(in) :: pattern(*)
      integer(c_int) :: status
    end function
    function graft_model_configure(model, batch, optimizer, lr, momentum, weight_decay) &
        bind(C, name="graft_model_configure") result(status)
      import :: c_ptr, c_char, c_int, c_int64_t, c_float
      type(c_ptr), value :: model
      integer(c_int64_t), value :: batch
      character(kind=c_char), intent(in) :: optimizer(*)
      real(c_float), value :: lr, momentum, weight_decay
      integer(c_int) :: status
    end function
    function graft_model_train_step(model, images, labels, shape_nhwc, memory, stream, loss) &
        bind(C, name="graft_model_train_step") result(status)
      import :: c_ptr, c_float, c_int32_t, c_int64_t, c_int, c_double
      type(c_ptr), value :: model
      real(c_float), intent(in) :: images(*)
      integer(c_int32_t), intent(in) :: labels(*)
      integer(c_int64_t), intent(in) :: shape_nhwc(4)
      integer(c_int), value :: memory
      type(c_ptr), value :: stream
      real(c_double), intent(out) :: loss
      integer(c_int) :: status
    end function
    function graft_model_create_sequence(spec, steps, features, classes, seed, device, model) &
        bind(C, name="graft_model_create_sequence") result(status)
      import :: c_char, c_int64_t, c_int, c_ptr
      character(kind=c_char), intent(in) :: spec(*)
      integer(c_int64_t), value :: steps, features, seed
      integer(c_int), value :: classes, device
      type(c_ptr), intent(out) :: model
      integer(c_int) :: status
    end function
    function graft_model_train_step_sequence(model, x, labels, shape_nsf, lengths, memory, stream, loss) &
        bind(C, name="graft_model_train_step_sequence") result(status)
      import :: c_ptr, c_float, c_int32_t, c_int64_t, c_int, c_double
      type(c_ptr), value :: model
      real(c_float), intent(in) :: x(*)
      integer(c_int32_t), intent(in) :: labels(*), lengths(*)
      integer(c_int64_t), intent(in) :: shape_nsf(3)
      integer(c_int), value :: memory
      type(c_ptr), value :: stream
      real(c_double), intent(out) :: loss
      integer(c_int) :: status
    end function
    function graft_model_evaluate_sequence(model, x, labels, shape_nsf, lengths, memory, stream, loss, accuracy) &
        bind(C, name="graft_model_evaluate_sequence") result(status)
      import :: c_ptr, c_float, c_int32_t, c_int64_t, c_int, c_double
      type(c_ptr), value :: model
      real(c_float), intent(in) :: x(*)
      integer(c_int32_t), intent(in) :: labels(*), lengths(*)
      integer(c_int64_t), intent(in) :: shape_nsf(3)
      integer(c_int), value :: memory
      type(c_ptr), value :: stream
      real(c_double), intent(out) :: loss, accuracy
      integer(c_int) :: status
    end function
  end interface

contains

  ! The handle's last error as a Fortran string.
  function last_error(model) result(text)
    type(c_ptr), intent(in) :: model
    character(len=:), allocatable :: text
    character(kind=c_char), pointer :: chars(:)
    integer :: n
    call c_f_pointer(graft_model_last_error(model), chars, [4096])
    n = 0
    do while (chars(n + 1) /= c_null_char)
      n = n + 1
    end do
    allocate(character(len=n) :: text)
    text = transfer(chars(1:n), text)
  end function
end module graft
